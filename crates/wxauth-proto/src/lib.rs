//! The wxauth gRPC contract as Rust types: the one place both the auth-service and its
//! callers (the gateway, internal services, tests) take the API from.
//!
//! `tonic` and `prost` are re-exported so that a caller builds against the exact versions the
//! generated code was made with.

pub use prost;
pub use prost_types;
pub use tonic;

/// `wxauth.v1`: the login API. See `proto/wxauth/v1/auth.proto` for the contract.
pub mod v1 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    tonic::include_proto!("wxauth.v1");
}

/// The encoded descriptor set of every wxauth proto file, with comments, for gRPC server
/// reflection (grpcurl reads the field documentation from it).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("wxauth_descriptor");

/// The `google.rpc.ErrorInfo.domain` wxauth puts on every error it returns.
pub const ERROR_DOMAIN: &str = "wxauth";

/// The `google.rpc.ErrorInfo.metadata` key under which a WeChat errcode travels.
pub const WECHAT_ERRCODE_KEY: &str = "wechat_errcode";

pub mod wire;

pub use wire::REQUEST_ID_HEADER;
