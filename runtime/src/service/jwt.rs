//! JSON Web Tokens an identity provider issues, accepted as identities (seed 003: the
//! tenant, the subject and the application come from the caller's JWT). The operator
//! names the key that signs them (`wasp serve --jwt-key FILE`):
//!
//! - a PEM public key: RSA for RS256, or EC P-256 for ES256;
//! - a JWKS file (`{"keys": [...]}`, RSA and P-256 keys), the token's `kid` choosing
//!   the key (a token without one is checked with the only key, when there is one);
//! - anything else is a shared secret for HS256, at least 32 bytes.
//!
//! Only the algorithm of the key is accepted (a token cannot choose another, nor
//! `none`). A token must carry `exp` and `sub`, and the tenant claim (`tenant_id`); the
//! role is the `role` claim (or the highest of a `roles` list), a viewer without one; an
//! `app_id` claim scopes the caller to one application's playbooks. With `--jwt-issuer`
//! and `--jwt-audience`, `iss` and `aud` must match.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::keys::{Identity, Role};

/// The most a token's text may hold.
const MAX_TOKEN: usize = 16 * 1024;
/// The least a shared secret may hold.
const MIN_SECRET: usize = 32;
/// How far a clock may be off when `exp` and `nbf` are checked, in seconds.
const LEEWAY_SECS: u64 = 60;

/// The keys tokens are checked with, each with the one algorithm it allows.
enum Keys {
    One(DecodingKey, Algorithm),
    /// By `kid`.
    Set(Vec<(Option<String>, DecodingKey, Algorithm)>),
}

/// How tokens are checked and read.
pub struct JwtConfig {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    tenant_claim: String,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtConfig {
    /// The configuration of the key in the file at `path` (see the module's
    /// documentation), tokens checked against `issuer` and `audience` when given, their
    /// tenant read from `tenant_claim`.
    pub fn load(
        path: &Path,
        issuer: Option<String>,
        audience: Option<String>,
        tenant_claim: String,
    ) -> Result<Self, String> {
        let file = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {file}: {e}"))?;
        let keys = keys(&bytes).map_err(|e| format!("{file}: {e}"))?;
        Ok(Self {
            keys,
            issuer,
            audience,
            tenant_claim,
        })
    }

    /// Whether `token` has a JWT's shape (so that it is not taken for an API key's).
    pub fn looks_like(token: &str) -> bool {
        token.starts_with("eyJ") && token.split('.').count() == 3
    }

    /// Who `token` says the caller is, once its signature, times, issuer and audience
    /// hold; or why it is refused.
    pub fn identify(&self, token: &str) -> Result<Identity, String> {
        if token.len() > MAX_TOKEN {
            return Err(format!("the token is longer than {MAX_TOKEN} bytes"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("{e}"))?;
        let (key, algorithm) = match &self.keys {
            Keys::One(key, algorithm) => (key, *algorithm),
            Keys::Set(keys) => {
                let found = match &header.kid {
                    Some(kid) => keys.iter().find(|(id, ..)| id.as_deref() == Some(kid)),
                    None if keys.len() == 1 => keys.first(),
                    None => None,
                };
                let (_, key, algorithm) =
                    found.ok_or("no key of the JWKS has the token's `kid`")?;
                (key, *algorithm)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        // A claim checked when configured is also required: a token without it would
        // pass unchecked.
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| format!("{e}"))?
            .claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        // Not an API key's id: what a token writes is stamped with its subject.
        let subject = text("sub").filter(|s| !s.is_empty() && s.len() <= 256);
        let subject = subject
            .filter(|s| !s.starts_with("key_"))
            .ok_or("`sub` is not a name of 1 to 256 characters (not starting `key_`)")?;
        let tenant = text(&self.tenant_claim)
            .filter(|t| crate::trace::valid_tenant(t))
            .ok_or_else(|| format!("`{}` is not a tenant's name", self.tenant_claim))?;
        let role = role(&claims);
        let app = match claims.get("app_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(app)) if !app.is_empty() && app.len() <= 256 => Some(app.clone()),
            Some(_) => return Err("`app_id` is not a name of 1 to 256 characters".to_owned()),
        };
        Ok(Identity {
            subject: Some(subject.to_owned()),
            tenant: tenant.to_owned(),
            role,
            app,
        })
    }
}

/// The role a token's claims give: `role`, or the highest of `roles`; a viewer's when
/// they name none.
fn role(claims: &Map<String, Value>) -> Role {
    let named = |value: &Value| value.as_str().and_then(Role::named);
    let roles = claims.get("roles").and_then(Value::as_array);
    claims
        .get("role")
        .and_then(named)
        .into_iter()
        .chain(roles.into_iter().flatten().filter_map(named))
        .max()
        .unwrap_or(Role::Viewer)
}

/// The keys `bytes` hold: a PEM public key, a JWKS, or a shared secret.
fn keys(bytes: &[u8]) -> Result<Keys, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).unwrap_or_default().trim_start();
    if text.starts_with("-----BEGIN") {
        if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
            return Ok(Keys::One(key, Algorithm::RS256));
        }
        let key = DecodingKey::from_ec_pem(bytes)
            .map_err(|e| format!("not an RSA or EC public key in PEM: {e}"))?;
        return Ok(Keys::One(key, Algorithm::ES256));
    }
    if text.starts_with('{') {
        let set: JwkSet = serde_json::from_str(text)
            .map_err(|e| format!("not a JWKS ({{\"keys\": […]}}): {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                _ => return Err("a JWKS key is neither RSA nor EC P-256".to_owned()),
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("a JWKS key: {e}"))?;
            keys.push((jwk.common.key_id.clone(), key, algorithm));
        }
        if keys.is_empty() {
            return Err("the JWKS holds no key".to_owned());
        }
        return Ok(Keys::Set(keys));
    }
    // Anything else is a secret, written as text: a key file in another format (DER, a
    // PEM cut short) is refused, never taken for a secret its public half would give.
    let secret = bytes.trim_ascii();
    let text = secret.iter().all(|b| b.is_ascii_graphic());
    if !text || secret.windows(5).any(|w| w == b"BEGIN") {
        return Err(
            "neither a PEM public key, a JWKS, nor a shared secret (printable text without \
             spaces)"
                .to_owned(),
        );
    }
    if secret.len() < MIN_SECRET {
        return Err(format!(
            "a shared secret (HS256) holds at least {MIN_SECRET} bytes; this one {}",
            secret.len()
        ));
    }
    Ok(Keys::One(
        DecodingKey::from_secret(secret),
        Algorithm::HS256,
    ))
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/jwt")
            .join(name)
    }

    fn config(key: &str) -> JwtConfig {
        JwtConfig::load(&fixture(key), None, None, "tenant_id".to_owned()).unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims(extra: Value) -> Value {
        let mut claims = json!({"sub": "alice", "tenant_id": "acme", "exp": now() + 300});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        claims
    }

    fn signed(
        algorithm: Algorithm,
        kid: Option<&str>,
        key: &EncodingKey,
        claims: &Value,
    ) -> String {
        let header = Header {
            kid: kid.map(str::to_owned),
            ..Header::new(algorithm)
        };
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn rsa() -> EncodingKey {
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).unwrap()).unwrap()
    }

    fn ec() -> EncodingKey {
        EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem")).unwrap()).unwrap()
    }

    #[test]
    fn a_token_the_providers_key_signed_is_its_subject_in_its_tenant_with_its_role() {
        let jwt = config("rsa-public.pem");
        let token = signed(
            Algorithm::RS256,
            None,
            &rsa(),
            &claims(json!({"role": "operator"})),
        );
        assert!(JwtConfig::looks_like(&token));
        let who = jwt.identify(&token).unwrap();
        assert_eq!(
            (
                who.subject.as_deref(),
                who.tenant.as_str(),
                who.role,
                who.app
            ),
            (Some("alice"), "acme", Role::Operator, None)
        );
        // The highest of `roles`; a viewer without; an application's.
        let token = signed(
            Algorithm::RS256,
            None,
            &rsa(),
            &claims(json!({"roles": ["viewer", "admin", "x"], "app_id": "soar-sync"})),
        );
        let who = jwt.identify(&token).unwrap();
        assert_eq!(
            (who.role, who.app.as_deref()),
            (Role::Admin, Some("soar-sync"))
        );
        let token = signed(Algorithm::RS256, None, &rsa(), &claims(json!({})));
        assert_eq!(jwt.identify(&token).unwrap().role, Role::Viewer);
    }

    #[test]
    fn a_token_out_of_date_forged_or_without_a_tenant_is_refused() {
        let jwt = config("rsa-public.pem");
        let refused = |claims: &Value| {
            jwt.identify(&signed(Algorithm::RS256, None, &rsa(), claims))
                .unwrap_err()
        };
        assert!(refused(&claims(json!({"exp": now() - 120}))).contains("Expired"));
        assert!(refused(&claims(json!({"nbf": now() + 600}))).contains("Immature"));
        assert!(refused(&claims(json!({"tenant_id": "Acme Corp"}))).contains("tenant"));
        let mut no_tenant = claims(json!({}));
        no_tenant.as_object_mut().unwrap().remove("tenant_id");
        assert!(refused(&no_tenant).contains("tenant"));
        let mut no_exp = claims(json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(refused(&no_exp).contains("exp"));
        // Signed with the public key as an HMAC secret (the classic confusion), or by
        // another key: refused.
        let public = std::fs::read(fixture("rsa-public.pem")).unwrap();
        let confused = signed(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(&public),
            &claims(json!({})),
        );
        assert!(jwt.identify(&confused).is_err());
        let other = signed(Algorithm::ES256, None, &ec(), &claims(json!({})));
        assert!(jwt.identify(&other).is_err());
    }

    #[test]
    fn issuer_and_audience_hold_when_configured() {
        let jwt = JwtConfig::load(
            &fixture("ec-public.pem"),
            Some("https://idp.example".to_owned()),
            Some("wasp".to_owned()),
            "tenant_id".to_owned(),
        )
        .unwrap();
        let good = claims(json!({"iss": "https://idp.example", "aud": "wasp"}));
        assert!(
            jwt.identify(&signed(Algorithm::ES256, None, &ec(), &good))
                .is_ok()
        );
        for bad in [
            json!({"iss": "https://other.example", "aud": "wasp"}),
            json!({"iss": "https://idp.example", "aud": "other"}),
            json!({"aud": "wasp"}),
            json!({"iss": "https://idp.example"}),
        ] {
            let token = signed(Algorithm::ES256, None, &ec(), &claims(bad.clone()));
            assert!(jwt.identify(&token).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_jwks_key_is_chosen_by_kid_and_a_shared_secret_must_be_long() {
        let jwt = config("jwks.json");
        let token = signed(Algorithm::ES256, Some("ec-1"), &ec(), &claims(json!({})));
        assert_eq!(jwt.identify(&token).unwrap().tenant, "acme");
        let token = signed(Algorithm::RS256, Some("rsa-1"), &rsa(), &claims(json!({})));
        assert!(jwt.identify(&token).is_ok());
        // The RSA key's token naming the EC key, or no key: refused.
        let token = signed(Algorithm::RS256, Some("ec-1"), &rsa(), &claims(json!({})));
        assert!(jwt.identify(&token).is_err());
        let token = signed(Algorithm::RS256, None, &rsa(), &claims(json!({})));
        assert!(jwt.identify(&token).unwrap_err().contains("kid"));

        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "too-short").unwrap();
        let error = JwtConfig::load(&short, None, None, "tenant_id".to_owned()).unwrap_err();
        assert!(error.contains("at least 32 bytes"), "{error}");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
        let jwt = JwtConfig::load(&secret, None, None, "tenant_id".to_owned()).unwrap();
        let key = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
        let token = signed(Algorithm::HS256, None, &key, &claims(json!({})));
        assert!(jwt.identify(&token).is_ok());
    }
}
