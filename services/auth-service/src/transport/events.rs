//! The RPC of webhook events: replaying dead ones.

use wxauth_proto::v1::{ReplayEventsRequest, ReplayEventsResponse};

use super::AuthApi;
use crate::{domain::CallContext, error::AuthError};

impl AuthApi {
    pub(super) async fn replay_events_rpc(
        &self,
        req: ReplayEventsRequest,
        context: CallContext,
    ) -> Result<ReplayEventsResponse, AuthError> {
        let replayed = self
            .webhooks
            .replay(&context.reach, req.subscription.trim(), &req.event_ids)
            .await?;
        Ok(ReplayEventsResponse {
            replayed: i64::try_from(replayed).unwrap_or(i64::MAX),
        })
    }
}
