//! The axum router: one POST route per [`Target`], `/convert`, limits on size and time.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use tower_http::timeout::TimeoutLayer;

use crate::{cache::SnapshotSource, convert::convert, review::review, targets::Target};

/// Largest request body accepted. The API server caps objects at 3 MiB; an AdmissionReview of
/// an UPDATE carries two of them.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Time allowed for a whole request, so a client that sends slowly cannot hold a worker.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook router; `cache` supplies the existing objects rules compare against.
pub fn router(cache: Arc<dyn SnapshotSource>) -> Router {
    let mut router = Router::new();
    for target in Target::ALL {
        router = router.route(
            &target.path(),
            post(
                move |State(cache): State<Arc<dyn SnapshotSource>>, body: Bytes| async move {
                    // Rules are CPU-only and short; keep them off the async workers anyway.
                    let verdict =
                        tokio::task::spawn_blocking(move || review(target, &body, cache.as_ref()))
                            .await;
                    match verdict {
                        Ok(Ok(response)) => Json(response).into_response(),
                        Ok(Err(bad)) => plain(StatusCode::BAD_REQUEST, bad.to_string()),
                        Err(join) => plain(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("review failed: {join}"),
                        ),
                    }
                },
            ),
        );
    }
    router
        .route(
            "/convert",
            post(|body: Bytes| async move {
                match convert(&body) {
                    Ok(review) => Json(review).into_response(),
                    Err(message) => plain(StatusCode::BAD_REQUEST, message),
                }
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(cache)
}

fn plain(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}
