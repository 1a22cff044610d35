//! Backend-issued JWTs (spec §2.3): HS256 by default, RS256 when configured; the accepted
//! algorithms are pinned by `JWT_ALGORITHMS` and `none` is never accepted.
use std::time::Duration;

use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Settings;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub token_type: TokenType,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub username: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Token is invalid or expired")]
    InvalidOrExpired,
    #[error("Token has wrong type")]
    WrongType,
}

pub struct IssuedPair {
    pub access: String,
    pub refresh: String,
    pub refresh_claims: Claims,
}

pub struct TokenService {
    signing_algorithm: Algorithm,
    encoding_key: EncodingKey,
    hmac_key: DecodingKey,
    rsa_key: Option<DecodingKey>,
    accepted: Vec<Algorithm>,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
}

fn algorithm(name: &str) -> Result<Algorithm, String> {
    name.parse::<Algorithm>().map_err(|_| format!("unsupported JWT algorithm {name}"))
}

impl TokenService {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        // One backend is compiled in; installing it explicitly avoids relying on inference.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let signing_algorithm = algorithm(&settings.jwt_algorithm)?;
        let secret = settings.jwt_signing_key.expose().as_bytes();
        let encoding_key = match signing_algorithm {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
                EncodingKey::from_rsa_pem(secret).map_err(|e| format!("JWT_SIGNING_KEY is not an RSA PEM key: {e}"))?
            }
            _ => EncodingKey::from_secret(secret),
        };
        let rsa_key = settings
            .jwt_verifying_key
            .as_deref()
            .map(|pem| {
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| format!("JWT_VERIFYING_KEY is not an RSA PEM key: {e}"))
            })
            .transpose()?;
        Ok(Self {
            signing_algorithm,
            encoding_key,
            hmac_key: DecodingKey::from_secret(secret),
            rsa_key,
            accepted: settings.jwt_algorithms.iter().map(|a| algorithm(a)).collect::<Result<_, _>>()?,
            access_lifetime: settings.access_token_lifetime,
            refresh_lifetime: settings.refresh_token_lifetime,
        })
    }

    pub fn issue_pair(&self, username: &str, now_unix: i64) -> Result<IssuedPair, String> {
        let access = self.mint(TokenType::Access, username, now_unix, self.access_lifetime)?;
        let refresh_claims = self.claims(TokenType::Refresh, username, now_unix, self.refresh_lifetime);
        let refresh = self.sign(&refresh_claims)?;
        Ok(IssuedPair { access, refresh, refresh_claims })
    }

    pub fn mint(
        &self,
        token_type: TokenType,
        username: &str,
        now_unix: i64,
        lifetime: Duration,
    ) -> Result<String, String> {
        self.sign(&self.claims(token_type, username, now_unix, lifetime))
    }

    fn claims(&self, token_type: TokenType, username: &str, now_unix: i64, lifetime: Duration) -> Claims {
        Claims {
            token_type,
            exp: now_unix + lifetime.as_secs() as i64,
            iat: now_unix,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            username: username.to_owned(),
        }
    }

    fn sign(&self, claims: &Claims) -> Result<String, String> {
        encode(&Header::new(self.signing_algorithm), claims, &self.encoding_key).map_err(|e| e.to_string())
    }

    /// Verifies signature, algorithm, expiry and type. Unlike the original, a refresh token is not
    /// accepted where an access token is expected (clients never send one there).
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::InvalidOrExpired)?;
        if !self.accepted.contains(&header.alg) {
            return Err(TokenError::InvalidOrExpired);
        }
        let key = match header.alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => &self.hmac_key,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
                self.rsa_key.as_ref().ok_or(TokenError::InvalidOrExpired)?
            }
            _ => return Err(TokenError::InvalidOrExpired),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let claims = decode::<Claims>(token, key, &validation).map_err(|_| TokenError::InvalidOrExpired)?.claims;
        if claims.token_type != expected {
            return Err(TokenError::WrongType);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_settings;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

    fn service() -> TokenService {
        TokenService::new(&test_settings("t", &[])).unwrap()
    }

    fn now() -> i64 {
        crate::domain::time::now().unix_timestamp()
    }

    #[test]
    fn issued_access_token_verifies_and_carries_the_username() {
        let s = service();
        let pair = s.issue_pair("4242", now()).unwrap();
        let claims = s.verify(&pair.access, TokenType::Access).unwrap();
        assert_eq!(claims.username, "4242");
        assert_eq!(s.verify(&pair.refresh, TokenType::Refresh).unwrap().jti, pair.refresh_claims.jti);
    }

    #[test]
    fn wrong_type_expired_tampered_none_and_foreign_algorithms_are_rejected() {
        let s = service();
        let pair = s.issue_pair("4242", now()).unwrap();
        assert_eq!(s.verify(&pair.refresh, TokenType::Access), Err(TokenError::WrongType));
        assert_eq!(s.verify(&pair.access, TokenType::Refresh), Err(TokenError::WrongType));

        let expired = s.mint(TokenType::Access, "4242", now() - 600, Duration::from_secs(300)).unwrap();
        assert_eq!(s.verify(&expired, TokenType::Access), Err(TokenError::InvalidOrExpired));

        let mut parts: Vec<String> = pair.access.split('.').map(str::to_owned).collect();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap().replace("4242", "9999");
        parts[1] = URL_SAFE_NO_PAD.encode(payload);
        assert_eq!(s.verify(&parts.join("."), TokenType::Access), Err(TokenError::InvalidOrExpired));

        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", pair.access.split('.').nth(1).unwrap());
        assert_eq!(s.verify(&unsigned, TokenType::Access), Err(TokenError::InvalidOrExpired));

        // Same secret, algorithm outside JWT_ALGORITHMS (HS256 only by default).
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &s.verify(&pair.access, TokenType::Access).unwrap(),
            &EncodingKey::from_secret(b"test-signing-key-with-enough-entropy-0123456789"),
        )
        .unwrap();
        assert_eq!(s.verify(&hs512, TokenType::Access), Err(TokenError::InvalidOrExpired));
        assert_eq!(s.verify("not a token", TokenType::Access), Err(TokenError::InvalidOrExpired));
    }

    #[test]
    fn rs256_tokens_verify_with_the_public_key_and_key_confusion_is_refused() {
        let private = include_str!("../../../infra/fakes/keys/oidc-signing-key.pem");
        let public = include_str!("../../../infra/fakes/keys/oidc-signing-key.pub.pem");
        let settings = test_settings(
            "t",
            &[
                ("JWT_SIGNING_KEY", private),
                ("JWT_ALGORITHM", "RS256"),
                ("JWT_ALGORITHMS", "RS256"),
                ("JWT_VERIFYING_KEY", public),
            ],
        );
        let s = TokenService::new(&settings).unwrap();
        let pair = s.issue_pair("4242", now()).unwrap();
        assert_eq!(s.verify(&pair.access, TokenType::Access).unwrap().username, "4242");
        // The classic confusion: HS256 signed with the *public* key as the HMAC secret.
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &s.verify(&pair.access, TokenType::Access).unwrap(),
            &EncodingKey::from_secret(public.as_bytes()),
        )
        .unwrap();
        assert_eq!(s.verify(&forged, TokenType::Access), Err(TokenError::InvalidOrExpired));
    }
}
