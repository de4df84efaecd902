//! Validating admission webhooks for the `metallb.io` kinds: axum router, AdmissionReview
//! handling, TLS with certificate reload. Filled by the webhooks issue; nothing here works yet.
