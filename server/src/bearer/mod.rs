//! Validation of OAuth 2.0 Bearer access tokens against an issuer's JWKS.
