//! Object stores as backup destinations: S3 (and S3-compatible MinIO, Ceph, OSS, GCS's XML API),
//! Azure Blob Storage and Google Cloud Storage — their error names, messages and HTTP statuses,
//! each mapped to the category an SRE acts on.
//!
//! Names and messages follow the stores' own error references (AWS S3 "Error responses", Azure
//! "Blob service error codes", Google Cloud Storage "HTTP status and error codes", MinIO's
//! `XMinio*` codes) as they surface through ClickHouse (`S3_ERROR` 499, `Unable to parse
//! ExceptionName: … Message: …`), the AWS/Azure SDK logs, and clickhouse-backup's Go SDKs
//! (`api error AccessDenied: …`, `googleapi: Error 403: …`, `ServiceCode=…`).

use super::ErrorKind as K;
use super::{p, Pattern};

const S3: &str = "AWS S3 error responses";
const AZ: &str = "Azure Blob Storage error codes";
const GCS: &str = "Google Cloud Storage errors (googleapi)";
const MINIO: &str = "MinIO S3 API errors";
const SDK: &str = "AWS SDK / Poco HTTP client transport errors";

/// Wordings, checked case-insensitively. Specific names first.
#[rustfmt::skip]
pub static PATTERNS: &[Pattern] = &[
    // Credentials the store does not accept.
    p(K::Access, &["InvalidAccessKeyId", "Access Key Id you provided does not exist", "SignatureDoesNotMatch", "signature we calculated does not match", "ExpiredToken", "token has expired", "InvalidToken", "security token included in the request is invalid"], S3).detail("store_bad_credentials"),
    p(K::Access, &["AuthenticationFailed", "Server failed to authenticate the request"], AZ).detail("store_bad_credentials"),
    p(K::Access, &["invalid_grant", "Invalid JWT Signature"], GCS).detail("store_bad_credentials"),
    p(K::Access, &["NoCredentialProviders", "no valid providers in chain", "failed to refresh cached credentials", "no EC2 IMDS role found", "WebIdentityErr"], "AWS SDK for Go credential chain (clickhouse-backup)").detail("store_bad_credentials"),
    // Rights the credentials lack.
    p(K::Access, &["AccessDenied", "Access Denied", "AllAccessDisabled", "403 Forbidden"], S3).detail("store_access_denied"),
    p(K::Access, &["AuthorizationFailure", "AuthorizationPermissionMismatch", "not authorized to perform this operation", "PublicAccessNotPermitted", "InsufficientAccountPermissions", "AccountIsDisabled"], AZ).detail("store_access_denied"),
    p(K::Access, &["insufficientPermissions", "does not have storage."], GCS).detail("store_access_denied"),
    // Missing bucket, container or object.
    p(K::Destination, &["NoSuchBucket", "specified bucket does not exist", "bucket does not exist"], S3).detail("store_no_bucket"),
    p(K::Destination, &["ContainerNotFound", "specified container does not exist"], AZ).detail("store_no_bucket"),
    p(K::Destination, &["NoSuchKey", "specified key does not exist", "No such object"], S3).detail("store_no_key"),
    p(K::Destination, &["key not found"], "clickhouse-backup pkg/storage ErrNotFound").detail("store_no_key"),
    p(K::Destination, &["BlobNotFound", "specified blob does not exist", "ResourceNotFound", "specified resource does not exist"], AZ).detail("store_no_key"),
    // Wrong region or endpoint.
    p(K::Destination, &["PermanentRedirect", "must be addressed using the specified endpoint", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "the region '"], S3).detail("store_region"),
    p(K::Destination, &["unsupported protocol scheme", "InvalidBucketName", "Bucket name length out of bounds", "InvalidURI", "NotImplemented", "implies functionality that is not implemented"], S3).detail("store_endpoint"),
    // Store full.
    p(K::Destination, &["XMinioStorageFull", "minimum free drive threshold", "minimum free disk threshold", "cmd.StorageFull"], MINIO).detail("store_full"),
    // Throttling.
    p(K::Network, &["SlowDown", "Slow Down", "reduce your request rate", "Reduce request rate", "TooManyRequests", "Too Many Requests", "RequestLimitExceeded", "ThrottlingException"], S3).detail("store_throttled"),
    p(K::Network, &["ServerBusy", "server is busy"], AZ).detail("store_throttled"),
    p(K::Network, &["rateLimitExceeded"], GCS).detail("store_throttled"),
    // Timeouts talking to the store.
    p(K::Network, &["RequestTimeout", "was not read from or written to within the timeout period", "timeout awaiting response headers", "RequestTimeTooSkewed"], S3).detail("store_timeout"),
    p(K::Network, &["OperationTimedOut"], AZ).detail("store_timeout"),
    // Transport.
    p(K::Network, &["Unable to connect to endpoint", "Fail to get a new connection", "Could not connect to server", "Failed to make request to", "HTTP response code: -1", "We encountered an internal error", "ServiceUnavailable", "Service Unavailable", "Bad Gateway"], SDK).detail("store_transport"),
    p(K::Network, &["SSL CA cert", "certificate verify failed", "x509: certificate", "CERTIFICATE_VERIFY_FAILED"], SDK).detail("tls"),
];

/// HTTP status codes as the stores and SDKs print them: `(status, category, kind)`.
pub static STATUSES: &[(u16, K, &str)] = &[
    (401, K::Access, "store_bad_credentials"),
    (403, K::Access, "store_access_denied"),
    (404, K::Destination, "store_no_key"),
    (301, K::Destination, "store_region"),
    (307, K::Destination, "store_region"),
    (408, K::Network, "store_timeout"),
    (429, K::Network, "store_throttled"),
    (500, K::Network, "store_transport"),
    (502, K::Network, "store_transport"),
    (503, K::Network, "store_throttled"),
    (504, K::Network, "store_timeout"),
    (507, K::Destination, "store_full"),
];

/// Where a status number follows (lowercase): AWS SDKs, Poco, Go SDKs, googleapi, Azure SDK.
pub const STATUS_MARKERS: &[&str] = &[
    "status code: ",
    "statuscode: ",
    "http response code: ",
    "response status: ",
    "http/1.1 ",
    "(status: ",
    "googleapi: error ",
    "e.what() = ",
    "http error ",
    "[http ",
];

/// The statuses in `lower` (lowercase text): `(position, status)`, ascending.
pub fn statuses(lower: &str) -> Vec<(usize, u16)> {
    let mut out = Vec::new();
    for marker in STATUS_MARKERS {
        for (i, m) in lower.match_indices(marker) {
            let rest = &lower.as_bytes()[i + m.len()..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits != 3 {
                continue;
            }
            let n = rest[..3]
                .iter()
                .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
            out.push((i, n));
        }
    }
    out.sort_unstable();
    out
}

/// What a status means, if anything.
pub fn status_meaning(status: u16) -> Option<(K, &'static str)> {
    STATUSES.iter().find(|s| s.0 == status).map(|s| (s.1, s.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_from_every_sdk_wording() {
        let text = "https response error StatusCode: 403, RequestID: x; status code: 404, request id; \
                    HTTP response code: 503; Response status: 429, Too Many Requests; HTTP/1.1 403 Forbidden; \
                    googleapi: Error 403: no; e.what() = 403 This request; (status: 503, body; StatusCode: 40";
        let got: Vec<u16> = statuses(&text.to_ascii_lowercase())
            .into_iter()
            .map(|s| s.1)
            .collect();
        assert_eq!(got, vec![403, 404, 503, 429, 403, 403, 403, 503]);
        assert_eq!(status_meaning(429), Some((K::Network, "store_throttled")));
        assert_eq!(status_meaning(200), None);
    }

    #[test]
    fn table_is_well_formed() {
        for pat in PATTERNS {
            assert!(pat.detail.is_some() && !pat.fragments.is_empty(), "{pat:?}");
        }
    }
}
