//! What is left to do for a request once it has been dispatched to a role, as far as that
//! could go without waiting. Only a proxied request, the common case, is awaited in place;
//! the rest is boxed, so that the future of every request stays small (it is moved and kept
//! per connection).

use std::future::Future;
use std::pin::Pin;

use http::Response;

use crate::error::RequestError;
use crate::pages::Body;

/// An answer still to be worked out.
pub type Pending<'a> =
    Pin<Box<dyn Future<Output = Result<Response<Body>, RequestError>> + Send + 'a>>;

/// `F` is the role's ready-to-send request (the gateway's `Prepared`).
pub enum Step<'a, F> {
    /// The answer is known.
    Answer(Result<Response<Body>, RequestError>),
    /// A request ready for its upstream.
    Forward(F),
    /// Anything else that waits: login endpoints, files, the central role.
    Later(Pending<'a>),
}
