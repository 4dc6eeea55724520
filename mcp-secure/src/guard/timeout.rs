//! Guard 7b: run the body under the tool's timeout and the request's cancellation, and turn a
//! panic into an `internal` error that reveals nothing to the client.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorCode, ToolError};

/// Runs `body`. On timeout or cancellation the body's future is dropped (stopping it at its
/// next await point) and `cancel` is cancelled so cooperative work can stop too. A call whose
/// request is already cancelled does not start its body. The timeout counts from the start.
//
// (An `async move` block rather than an `async fn`, which would keep a second copy of its
// arguments in the future every call holds.)
#[allow(clippy::manual_async_fn)]
pub fn run<F, T>(
    body: F,
    timeout: Option<Duration>,
    cancel: &CancellationToken,
) -> impl Future<Output = Result<T, ToolError>>
where
    F: Future<Output = Result<T, ToolError>>,
{
    async move {
        let outcome = if cancel.is_cancelled() {
            Err(cancelled())
        } else {
            // A timeout too long for the clock to represent is no deadline, not a panic.
            let deadline = timeout.and_then(|d| Some((Instant::now().checked_add(d)?, d)));
            let mut body = pin!(AssertUnwindSafe(body).catch_unwind());
            // Most bodies finish at their first poll, and need neither a timer nor a waiter on
            // the request's token (a lock to add, another to remove). A body that waits gets
            // both, boxed: the future every call holds does not carry them.
            // (`if let`, not `match`: its first answer is gone before the `else` waits, so the
            // future keeps no slot for it there.)
            if let Poll::Ready(r) =
                std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll(cx))).await
            {
                Ok(r)
            } else {
                Box::pin(watch(body.as_mut(), deadline, cancel)).await
            }
        };
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".into());
                tracing::error!(target: "mcp_secure::tool", panic = %what, "tool body panicked");
                Err(ToolError::new(ErrorCode::Internal, "internal error"))
            }
            Err(e) => {
                cancel.cancel();
                Err(e)
            }
        }
    }
}

/// Waits for a body that did not finish at its first poll, until its deadline or the
/// request's cancellation. The body wins a tie: its work is done.
async fn watch<F: Future>(
    body: Pin<&mut F>,
    deadline: Option<(Instant, Duration)>,
    cancel: &CancellationToken,
) -> Result<F::Output, ToolError> {
    let limited = async {
        match deadline {
            Some((at, d)) => tokio::time::timeout_at(at, body)
                .await
                .map_err(|_| timed_out(d)),
            None => Ok(body.await),
        }
    };
    tokio::select! {
        biased;
        r = limited => r,
        () = cancel.cancelled() => Err(cancelled()),
    }
}

/// The error of a call stopped at its timeout.
pub(crate) fn timed_out(d: Duration) -> ToolError {
    ToolError::new(
        ErrorCode::Timeout,
        format!("the tool did not finish within {} ms", d.as_millis()),
    )
    .with_detail(
        "timeout_ms",
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
    )
}

/// The error of a call whose request was cancelled.
pub(crate) fn cancelled() -> ToolError {
    ToolError::new(ErrorCode::Cancelled, "the request was cancelled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn timeout_cancel_and_panic() {
        let ct = CancellationToken::new();
        let slow = run(
            async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, ToolError>(())
            },
            Some(Duration::from_millis(50)),
            &ct,
        )
        .await;
        assert_eq!(slow.unwrap_err().code(), ErrorCode::Timeout);
        assert!(ct.is_cancelled());

        let ct = CancellationToken::new();
        ct.cancel();
        let r = run(std::future::pending::<Result<(), ToolError>>(), None, &ct).await;
        assert_eq!(r.unwrap_err().code(), ErrorCode::Cancelled);

        // Cancelled before it starts: a body that would finish at once is not run at all.
        let ct = CancellationToken::new();
        ct.cancel();
        let started = std::sync::atomic::AtomicBool::new(false);
        let r = run(
            async {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, ToolError>(())
            },
            None,
            &ct,
        )
        .await;
        assert_eq!(r.unwrap_err().code(), ErrorCode::Cancelled);
        assert!(!started.load(std::sync::atomic::Ordering::SeqCst));

        // Cancelled while the body waits (after its first poll registered nothing).
        let ct = CancellationToken::new();
        let canceller = {
            let ct = ct.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ct.cancel();
            })
        };
        let r = run(
            std::future::pending::<Result<(), ToolError>>(),
            Some(Duration::from_secs(60)),
            &ct,
        )
        .await;
        assert_eq!(r.unwrap_err().code(), ErrorCode::Cancelled);
        canceller.await.unwrap();

        // A body that waits, then finishes within its time: its answer, nothing cancelled.
        let ct = CancellationToken::new();
        let r = run(
            async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok::<_, ToolError>(7)
            },
            Some(Duration::from_secs(1)),
            &ct,
        )
        .await;
        assert_eq!(r.unwrap(), 7);
        assert!(!ct.is_cancelled());

        // A timeout past what the clock can represent waits like none (tokio's own
        // `timeout` does the same), and does not panic.
        let ct = CancellationToken::new();
        let r = run(
            async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok::<_, ToolError>(8)
            },
            Some(Duration::MAX),
            &ct,
        )
        .await;
        assert_eq!(r.unwrap(), 8);

        // A panic after waiting is caught as well as one at the first poll.
        let ct = CancellationToken::new();
        let r = run(
            async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                panic!("secret detail")
            },
            Some(Duration::from_secs(1)),
            &ct,
        )
        .await as Result<(), ToolError>;
        assert_eq!(r.unwrap_err().code(), ErrorCode::Internal);

        let ct = CancellationToken::new();
        let r = run(async { panic!("secret detail") }, None, &ct).await as Result<(), ToolError>;
        let e = r.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (ErrorCode::Internal, "internal error")
        );
    }
}
