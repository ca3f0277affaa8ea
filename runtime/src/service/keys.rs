//! API keys and the identity behind a request: who a credential is, and what its role
//! lets it do (seed 002: a viewer reads executions and logs; an operator also creates,
//! changes, deletes, runs and kills; an admin also manages assets and keys).
//!
//! A key's token is `wasp_<id>_<secret>`, shown once when the key is made. The store
//! keeps the key's id, name, tenant and role, and the SHA-256 of its secret, never the
//! secret. The server's own `--token` is the bootstrap admin. Every scheme a client sends
//! a token with (`Authorization: Bearer`, `TC-Token`, `ph-auth-token`, `X-Auth-Token`)
//! carries either.
//!
//! Tenants: a key acts in one. Everything it makes is that tenant's, and everything it
//! reads is filtered by it: another tenant's record answers 404, as a missing one. An
//! admin key manages its own tenant's keys; the server's own token, every tenant's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::{Error, Service};
use crate::store::{ApiKey, Store};

pub use crate::trace::DEFAULT_TENANT;

/// How long a key read from the store is trusted before it is read again: a key
/// revoked by another process (`wasp keys revoke`) is refused within this.
const KEY_CACHE_FOR: Duration = Duration::from_secs(10);
/// Keys cached at the most (the cache is emptied when full).
const MAX_CACHED_KEYS: usize = 10_000;
/// The longest name a key may have.
const MAX_NAME: usize = 128;

/// What an identity may do, each role all that the one before may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads executions, steps, logs, playbooks and assets.
    Viewer,
    /// Also creates, changes, deletes, runs and kills.
    Operator,
    /// Also manages assets and keys.
    Admin,
}

impl Role {
    /// The role called `name`.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The key it presented; `None` for the server's own token.
    pub key: Option<String>,
    /// The tenant it acts in.
    pub tenant: String,
    /// What it may do.
    pub role: Role,
}

impl Identity {
    /// Whether it manages every tenant's keys: the server's own token does; an admin key
    /// only its own tenant's.
    pub fn all_tenants(&self) -> bool {
        self.key.is_none()
    }

    /// The server's own token: the bootstrap admin.
    pub fn bootstrap() -> Self {
        Self {
            key: None,
            tenant: DEFAULT_TENANT.to_owned(),
            role: Role::Admin,
        }
    }
}

/// Keys read from the store lately, by id, with when each was read.
type Cached = HashMap<String, (ApiKey, Instant)>;

/// The keys read lately, and how many revocations this process has made: a read that
/// began before one is not cached (it may hold the key as it was).
#[derive(Debug, Default)]
pub(super) struct KeyCache(Mutex<(Cached, u64)>);

/// A new key named `name` for `tenant` with `role`: its record, to store, and its
/// token, to show once.
pub fn new_key(name: &str, tenant: &str, role: &str) -> Result<(ApiKey, String), Error> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME || name.contains(char::is_control) {
        return Err(Error::Invalid(format!(
            "a key's name is 1 to {MAX_NAME} characters, none of them control characters"
        )));
    }
    if !crate::trace::valid_tenant(tenant) {
        return Err(Error::Invalid(format!(
            "`{tenant}` is not a tenant's name: use 1 to 63 of a-z, 0-9, `-` and `_`, \
             starting with a letter or a digit"
        )));
    }
    let role = Role::named(role).ok_or_else(|| {
        Error::Invalid(format!(
            "role `{role}` is not one; a key is a viewer, an operator or an admin"
        ))
    })?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Unavailable(format!("no randomness for a key's secret: {e}")))?;
    let secret = hex::encode(bytes);
    let id = format!("key_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let token = format!("wasp_{id}_{secret}");
    let key = ApiKey {
        id,
        name: name.to_owned(),
        tenant: tenant.to_owned(),
        role: role.as_str().to_owned(),
        secret_sha256: sha256_hex(&secret),
        created_at: Utc::now(),
        revoked_at: None,
    };
    Ok((key, token))
}

/// Make a key and store it in `store`: its record and its token (see [`new_key`]).
pub fn create_key(
    store: &dyn Store,
    name: &str,
    tenant: &str,
    role: &str,
) -> Result<(ApiKey, String), Error> {
    let (key, token) = new_key(name, tenant, role)?;
    store.save_key(&key)?;
    Ok((key, token))
}

/// The server's signing key (`--key-file`): from it and a key's id comes the key's
/// signing secret, which clients that sign requests instead of sending a token use
/// (ThreatConnect's HMAC, Huawei Cloud's AK/SK: the key's id is the access id, the
/// secret the secret key). Nothing of it is stored: every server that shares the file
/// derives the same secrets, and a key's secret ends when the key is revoked.
pub struct SigningKey([u8; 32]);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

impl SigningKey {
    /// The key in the file at `path`: 64 hex digits, readable by its owner only. A
    /// missing file is made, with a new random key; whether it was.
    pub fn load_or_create(path: &std::path::Path) -> Result<(Self, bool), String> {
        let file = path.display();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    let mode = std::fs::metadata(path)
                        .map_err(|e| format!("{file}: {e}"))?
                        .permissions()
                        .mode();
                    if mode & 0o077 != 0 {
                        return Err(format!(
                            "{file} may be read by others (mode {:o}); the signing key must be \
                             its owner's only: chmod 600 {file}",
                            mode & 0o777
                        ));
                    }
                }
                let mut key = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
                    format!("{file} is not a signing key: it holds 64 hexadecimal digits")
                })?;
                Ok((Self(key), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| format!("no randomness for a key: {e}"))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let written = options.open(path).and_then(|mut out| {
                    std::io::Write::write_all(
                        &mut out,
                        format!("{}\n", hex::encode(key)).as_bytes(),
                    )
                });
                match written {
                    Ok(()) => Ok((Self(key), true)),
                    // Made meanwhile by another process: use that one.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(format!("cannot make the signing key {file}: {e}")),
                }
            }
            Err(e) => Err(format!("cannot read the signing key {file}: {e}")),
        }
    }

    /// The signing secret of key `key_id`: 64 hex digits.
    pub fn secret_of(&self, key_id: &str) -> String {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"wasp signing secret v1\0");
        mac.update(key_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The key id and secret of `token`, when it has a key token's shape.
fn parts(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix("wasp_")?.rsplit_once('_')?;
    let valid = id.starts_with("key_")
        && id.len() <= 64
        && secret.len() == 64
        && secret.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then_some((id, secret))
}

impl Service {
    /// Who `token` is: the server's own token (`server_token`), or an unrevoked key's;
    /// `None` for anything else.
    pub async fn identify(&self, server_token: &str, token: &str) -> Option<Identity> {
        if crate::constant_time_eq(token.as_bytes(), server_token.as_bytes()) {
            return Some(Identity::bootstrap());
        }
        let (id, secret) = parts(token)?;
        let key = self.cached_key(id).await?;
        let matches =
            crate::constant_time_eq(sha256_hex(secret).as_bytes(), key.secret_sha256.as_bytes());
        if !matches || key.revoked_at.is_some() {
            return None;
        }
        Some(Identity {
            key: Some(key.id),
            tenant: key.tenant,
            role: Role::named(&key.role)?,
        })
    }

    /// Who the unrevoked key `id` is, and its signing secret, to check a request it
    /// signed; `None` when there is no such key, or the server has no signing key.
    pub async fn signer(&self, id: &str) -> Option<(Identity, String)> {
        let signing = self.signing.as_ref()?;
        let key = self.cached_key(id).await?;
        if key.revoked_at.is_some() {
            return None;
        }
        let secret = signing.secret_of(&key.id);
        Some((
            Identity {
                key: Some(key.id),
                tenant: key.tenant,
                role: Role::named(&key.role)?,
            },
            secret,
        ))
    }

    /// The signing secret of key `id`, when the server has a signing key.
    pub fn signing_secret(&self, id: &str) -> Option<String> {
        Some(self.signing.as_ref()?.secret_of(id))
    }

    /// Key `id`, from the cache while it is fresh, else from the store.
    async fn cached_key(&self, id: &str) -> Option<ApiKey> {
        let revocations = {
            let cache = crate::lock(&self.keys.0);
            if let Some((key, read)) = cache.0.get(id)
                && read.elapsed() < KEY_CACHE_FOR
            {
                return Some(key.clone());
            }
            cache.1
        };
        let wanted = id.to_owned();
        let key = match self.blocking(move |store| store.key(&wanted)).await {
            Ok(key) => key?,
            Err(e) => {
                // Refused, and said where the operator looks: not taken for a bad key.
                tracing::error!(key = id, error = %crate::ErrorChain(&e), "reading an API key failed");
                return None;
            }
        };
        let mut cache = crate::lock(&self.keys.0);
        if cache.1 == revocations {
            if cache.0.len() >= MAX_CACHED_KEYS {
                cache.0.clear();
            }
            cache
                .0
                .insert(key.id.clone(), (key.clone(), Instant::now()));
        }
        Some(key)
    }

    /// Make and store a key (see [`new_key`]).
    pub async fn create_key(
        &self,
        name: String,
        tenant: String,
        role: String,
    ) -> Result<(ApiKey, String), Error> {
        let (key, token) = new_key(&name, &tenant, &role)?;
        let stored = key.clone();
        self.blocking(move |store| store.save_key(&stored)).await?;
        Ok((key, token))
    }

    /// Every key of `tenant` (of every tenant for `None`), oldest first (no secrets).
    pub async fn keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, Error> {
        let mut keys = self.blocking(|store| store.keys()).await?;
        keys.retain(|key| tenant.is_none_or(|t| key.tenant == t));
        Ok(keys)
    }

    /// Revoke key `id` of `tenant` (of any tenant for `None`): refused from now on, in
    /// this process at once. Another tenant's key is not found.
    pub async fn revoke_key(&self, tenant: Option<&str>, id: &str) -> Result<ApiKey, Error> {
        let wanted = id.to_owned();
        let owner = tenant.map(str::to_owned);
        let (revoked, key) = self
            .blocking(move |store| {
                let Some(key) = store.key(&wanted)? else {
                    return Ok((false, None));
                };
                if owner.is_some_and(|t| key.tenant != t) {
                    return Ok((false, None));
                }
                let revoked = store.revoke_key(&wanted, Utc::now())?;
                Ok((revoked, store.key(&wanted)?))
            })
            .await?;
        {
            let mut cache = crate::lock(&self.keys.0);
            cache.0.remove(id);
            cache.1 += 1;
        }
        match key {
            Some(key) if revoked => Ok(key),
            Some(_) => Err(Error::Conflict(format!("key `{id}` is revoked already"))),
            None => Err(Error::NotFound(format!("there is no key `{id}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_key_and_only_its_secret_matches_the_stored_hash() {
        let (key, token) = new_key("ci", DEFAULT_TENANT, "operator").unwrap();
        let (id, secret) = parts(&token).expect("a key token");
        assert_eq!(id, key.id);
        assert_eq!(sha256_hex(secret), key.secret_sha256);
        assert!(!key.secret_sha256.contains(secret));
        let (_, other) = new_key("ci", DEFAULT_TENANT, "operator").unwrap();
        assert_ne!(token, other, "each key has its own secret");
        for bad in [
            "",
            "wasp_",
            "wasp_key_x_",
            "key_x_00",
            &token[..token.len() - 1],
        ] {
            assert_eq!(parts(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_names_tenants_and_roles_are_refused_saying_why() {
        let refused = |name: &str, tenant: &str, role: &str| match new_key(name, tenant, role) {
            Err(Error::Invalid(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused("", DEFAULT_TENANT, "viewer").contains("1 to 128"));
        assert!(refused("a\nb", DEFAULT_TENANT, "viewer").contains("control"));
        for tenant in ["", "Acme", "-acme", "a b", &"a".repeat(64)] {
            assert!(
                refused("ci", tenant, "viewer").contains("not a tenant's name"),
                "{tenant:?}"
            );
        }
        assert!(new_key("ci", "acme-2_eu", "viewer").is_ok());
        assert!(refused("ci", DEFAULT_TENANT, "root").contains("role `root` is not one"));
    }
}
