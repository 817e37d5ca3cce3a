//! Requests whose last message ends the stream.
//!
//! tonic's request body learns that it is over only when it is polled once more after its
//! last message, so hyper sends the message and then an empty DATA frame to end the stream:
//! two writes, two wake-ups of the server, and a gRPC server handles a unary call only once
//! the end has arrived (measured on loopback: the empty frame came 0.1-0.2 ms after the
//! message, on every call). [`EndsWithMessage`] looks one frame ahead, without waiting, so
//! the message itself carries END_STREAM whenever the body already knows it is the last.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tower_service::Service;

/// Wraps a gRPC channel (any service of `http::Request<tonic::body::Body>`) so each
/// request's last message ends its stream.
#[derive(Debug, Clone)]
pub struct EndsWithMessage<S> {
    inner: S,
}

impl<S> EndsWithMessage<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> Service<http::Request<tonic::body::Body>> for EndsWithMessage<S>
where
    S: Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        self.inner
            .call(request.map(|body| tonic::body::Body::new(LookAhead::new(body))))
    }
}

/// A body that, on handing out a frame, already polls for the next one: when the inner body
/// turns out to be over, [`Body::is_end_stream`] says so together with the frame.
#[derive(Debug)]
pub struct LookAhead<B: Body> {
    inner: B,
    /// The frame (or error) the look-ahead found, handed out next.
    next: Option<Result<Frame<B::Data>, B::Error>>,
    /// The inner body said it has no more frames.
    ended: bool,
}

impl<B: Body> LookAhead<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            next: None,
            ended: false,
        }
    }
}

impl<B> Body for LookAhead<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let current = match this.next.take() {
            Some(found) => found,
            None if this.ended => return Poll::Ready(None),
            None => match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(found)) => found,
            },
        };
        if current.is_ok() && !this.ended {
            // Pending leaves the waker registered: the caller polls again either way.
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {}
                Poll::Ready(None) => this.ended = true,
                Poll::Ready(Some(found)) => this.next = Some(found),
            }
        }
        Poll::Ready(Some(current))
    }

    fn is_end_stream(&self) -> bool {
        self.next.is_none() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(Ok(frame)) = &self.next
            && let Some(data) = frame.data_ref()
        {
            let buffered = data.len() as u64;
            hint.set_lower(hint.lower().saturating_add(buffered));
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper.saturating_add(buffered));
            }
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, convert::Infallible, task::Waker};

    use super::*;

    /// A body handing out `frames` in turn; `None` in the list stands for one Pending.
    struct Scripted {
        frames: VecDeque<Option<Frame<Bytes>>>,
    }

    impl Body for Scripted {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            match self.frames.pop_front() {
                Some(Some(frame)) => Poll::Ready(Some(Ok(frame))),
                Some(None) => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    fn data(text: &'static str) -> Option<Frame<Bytes>> {
        Some(Frame::data(Bytes::from_static(text.as_bytes())))
    }

    /// Polls until Ready; returns the frame's data and is_end_stream() right after.
    fn next(body: &mut LookAhead<Scripted>) -> Option<(Bytes, bool)> {
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            match Pin::new(&mut *body).poll_frame(&mut cx) {
                Poll::Pending => continue,
                Poll::Ready(None) => return None,
                Poll::Ready(Some(Ok(frame))) => {
                    let bytes = frame.into_data().unwrap_or_default();
                    return Some((bytes, body.is_end_stream()));
                }
                Poll::Ready(Some(Err(never))) => match never {},
            }
        }
    }

    #[test]
    fn a_single_message_says_it_is_the_end_as_it_is_handed_out() {
        let mut body = LookAhead::new(Scripted {
            frames: [data("message")].into(),
        });
        assert!(!body.is_end_stream());
        assert_eq!(next(&mut body), Some((Bytes::from("message"), true)));
        assert_eq!(next(&mut body), None);
    }

    #[test]
    fn several_messages_keep_their_order_and_only_the_last_ends() {
        let mut body = LookAhead::new(Scripted {
            frames: [data("one"), data("two"), data("three")].into(),
        });
        assert_eq!(next(&mut body), Some((Bytes::from("one"), false)));
        assert_eq!(body.size_hint().lower(), 3, "the frame looked at counts");
        assert_eq!(next(&mut body), Some((Bytes::from("two"), false)));
        assert_eq!(next(&mut body), Some((Bytes::from("three"), true)));
        assert_eq!(next(&mut body), None);
    }

    #[test]
    fn a_body_not_ready_to_say_more_is_not_taken_for_ended() {
        // After "one" the inner body is Pending: the end is not known yet, so not claimed.
        let mut body = LookAhead::new(Scripted {
            frames: [data("one"), None, data("two")].into(),
        });
        assert_eq!(next(&mut body), Some((Bytes::from("one"), false)));
        assert_eq!(next(&mut body), Some((Bytes::from("two"), true)));
        assert_eq!(next(&mut body), None);
    }

    #[test]
    fn trailers_after_the_message_keep_the_stream_open_until_they_are_out() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let mut body = LookAhead::new(Scripted {
            frames: [data("message"), Some(Frame::trailers(trailers))].into(),
        });
        assert_eq!(next(&mut body), Some((Bytes::from("message"), false)));
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) else {
            panic!("the trailers come next");
        };
        assert!(frame.is_trailers());
        assert!(body.is_end_stream());
    }
}
