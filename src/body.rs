//! The body of a request as the roles see it: hyper's, or none at all for a request that the
//! HTTP/1.1 express lane (`server::h1`) parsed itself, which only takes bodiless requests.
//!
//! One type for both, so that everything above the listener (routing, the login, the proxy)
//! is written once, whichever parser read the request.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A request's body.
#[derive(Debug)]
pub enum RequestBody {
    /// The request has no body: its head declared none.
    Empty,
    /// A body hyper reads.
    Hyper(Incoming),
}

/// The request lent to a step that needs it whole (a login endpoint, the central role, a
/// session Redis must be asked for), taken out of its place: the hot path lends the request
/// down to the upstream's writer; these paths keep their own.
pub fn take_request(req: &mut http::Request<RequestBody>) -> http::Request<RequestBody> {
    std::mem::replace(req, http::Request::new(RequestBody::Empty))
}

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> Self {
        RequestBody::Hyper(body)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Hyper(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Hyper(body) => body.size_hint(),
        }
    }
}
