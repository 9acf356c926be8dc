//! Runs a handler on the invocation body as the Runtime API sent it, bytes untouched.
//!
//! `lambda_runtime` deserializes every body into the handler's payload type through
//! `serde_path_to_error` before the handler runs; for the consumer that typed parse was most of its
//! CPU per batch (docs/benchmarks.md, figure 1), and it builds owned strings the consumer only
//! reads. A layer in front of the runtime's own services takes each invocation's body out, keyed
//! by its request id, and gives the runtime an empty object to deserialize instead; the handler
//! then gets the original bytes and parses them itself.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{
    layers::TracingLayer, service_fn, Context, Diagnostic, LambdaEvent, LambdaInvocation, Runtime,
};
use serde::de::IgnoredAny;
use serde::Serialize;

/// What the runtime deserializes in place of the body.
const EMPTY_OBJECT: &[u8] = b"{}";

/// Bodies taken out of invocations that their handler has not picked up yet. With Lambda's
/// default of one invocation at a time it holds at most one; keyed by request id so that
/// concurrent invocations (`AWS_LAMBDA_MAX_CONCURRENCY`) each get their own.
#[derive(Clone, Default)]
struct Bodies(Arc<Mutex<HashMap<String, bytes::Bytes>>>);

impl Bodies {
    fn put(&self, request_id: String, body: bytes::Bytes) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request_id, body);
    }

    fn take(&self, request_id: &str) -> Option<bytes::Bytes> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(request_id)
    }
}

/// The layer that takes the body out of each invocation.
#[derive(Clone)]
struct TakeBody {
    bodies: Bodies,
}

impl<S> Layer<S> for TakeBody {
    type Service = TakeBodyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TakeBodyService {
            inner,
            bodies: self.bodies.clone(),
        }
    }
}

struct TakeBodyService<S> {
    inner: S,
    bodies: Bodies,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for TakeBodyService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let body = std::mem::replace(&mut invocation.body, bytes::Bytes::from_static(EMPTY_OBJECT));
        self.bodies.put(invocation.context.request_id.clone(), body);
        self.inner.call(invocation)
    }
}

/// The error a handler gets no body for (the layer did not run for this request): never expected,
/// reported as a failed invocation rather than a panic.
fn missing_body(request_id: &str) -> Diagnostic {
    Diagnostic {
        error_type: "InvocationBodyMissing".into(),
        error_message: format!("no body was kept for request {request_id}"),
    }
}

/// Polls the Runtime API and answers each invocation with `handler(body, context)`, as
/// `lambda_runtime::run` does (with its tracing layer), except that the body reaches the handler
/// as bytes.
pub async fn run_on_bytes<F, Fut, R, E>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(bytes::Bytes, Context) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    R: Serialize,
    E: Into<Diagnostic> + Debug,
{
    let bodies = Bodies::default();
    let taken = bodies.clone();
    let handler = Arc::new(handler);
    let service = service_fn(move |event: LambdaEvent<IgnoredAny>| {
        let body = taken.take(&event.context.request_id);
        let handler = handler.clone();
        async move {
            match body {
                Some(body) => handler(body, event.context).await.map_err(Into::into),
                None => Err(missing_body(&event.context.request_id)),
            }
        }
    });
    Runtime::new(service)
        .layer(TracingLayer::new())
        .layer(TakeBody { bodies })
        .run()
        .await
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{ready, Ready};

    use super::*;

    /// An inner service that records the body it was given.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<bytes::Bytes>>>);

    impl Service<LambdaInvocation> for Recorder {
        type Response = ();
        type Error = Infallible;
        type Future = Ready<Result<(), Infallible>>;

        fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
            self.0.lock().unwrap().push(invocation.body);
            ready(Ok(()))
        }
    }

    fn invocation(request_id: &str, body: &'static [u8]) -> LambdaInvocation {
        let (parts, ()) = http::Response::new(()).into_parts();
        let mut context = Context::default();
        context.request_id = request_id.to_string();
        LambdaInvocation {
            parts,
            body: bytes::Bytes::from_static(body),
            context,
        }
    }

    #[test]
    fn the_runtime_parses_an_empty_object_and_the_handler_gets_each_body_by_request_id() {
        let bodies = Bodies::default();
        let recorder = Recorder::default();
        let mut service = TakeBody {
            bodies: bodies.clone(),
        }
        .layer(recorder.clone());
        let first = br#"{"eventSource":"aws:kafka","records":{}}"#;
        let second = br#"{"eventSource":"SelfManagedKafka","records":{}}"#;
        service
            .call(invocation("8476a536-e9f4-11e8-9739-2dfe598c3fcd", first))
            .into_inner()
            .unwrap();
        service
            .call(invocation("9e1f7c3a-0b2d-4c5e-8f60-7a1b2c3d4e5f", second))
            .into_inner()
            .unwrap();

        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(seen, vec![EMPTY_OBJECT, EMPTY_OBJECT]);
        serde_json::from_slice::<IgnoredAny>(EMPTY_OBJECT).expect("the runtime's parse succeeds");
        assert_eq!(
            bodies.take("9e1f7c3a-0b2d-4c5e-8f60-7a1b2c3d4e5f").as_deref(),
            Some(&second[..])
        );
        assert_eq!(
            bodies.take("8476a536-e9f4-11e8-9739-2dfe598c3fcd").as_deref(),
            Some(&first[..])
        );
        assert_eq!(
            bodies.take("8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
            None,
            "taken once"
        );
    }
}
