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
/// How long a web session (Splunk SOAR's password login) lasts.
const SESSION_FOR: Duration = Duration::from_secs(8 * 60 * 60);
/// The subject of a session of the server's own token.
const BOOTSTRAP_SESSION: &str = "bootstrap";

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
    /// Who it is, as what it writes is stamped with (seed 003's `created_by`): the id of
    /// the API key it presented, or its JWT's subject; `None` for the server's own token.
    pub subject: Option<String>,
    /// The tenant it acts in.
    pub tenant: String,
    /// What it may do.
    pub role: Role,
    /// The application it acts for, when its JWT was minted for one (seed 003's
    /// `app_id`): it sees and makes that application's playbooks only.
    pub app: Option<String>,
}

impl Identity {
    /// What it may see of executions.
    pub fn scope(&self) -> crate::store::Scope {
        crate::store::Scope {
            tenant: self.tenant.clone(),
            app: self.app.clone(),
        }
    }

    /// Whether it may see what `owner` owns: its tenant's, and its application's when it
    /// acts for one.
    pub fn sees(&self, owner: &crate::trace::Owner) -> bool {
        self.reaches(&owner.tenant, owner.app.as_deref())
    }

    /// Whether it may run, change or read `playbook` (see [`Identity::sees`]).
    pub fn may_use(&self, playbook: &crate::playbook::Playbook) -> bool {
        self.reaches(&playbook.tenant, playbook.app.as_deref())
    }

    /// Whether it reaches what `tenant` and `app` own ([`crate::trace::within_reach`]).
    pub fn reaches(&self, tenant: &str, app: Option<&str>) -> bool {
        crate::trace::within_reach((&self.tenant, self.app.as_deref()), (tenant, app))
    }

    /// Whether it manages every tenant's keys: the server's own token does; an admin key
    /// only its own tenant's.
    pub fn all_tenants(&self) -> bool {
        self.subject.is_none()
    }

    /// The server's own token: the bootstrap admin.
    pub fn bootstrap() -> Self {
        Self {
            subject: None,
            tenant: DEFAULT_TENANT.to_owned(),
            role: Role::Admin,
            app: None,
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
            "`{tenant}` is not a tenant's name: use 1 to 63 of a-z and 0-9, in words joined \
             by single `-` (`acme`, `acme-eu`)"
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
    /// The key in the file at `path`: 64 hex digits, in a regular file (not a link) that
    /// is this process's user's and readable by it only.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        use std::io::Read as _;
        let file = path.display();
        let named = std::fs::symlink_metadata(path)
            .map_err(|e| format!("cannot read the signing key {file}: {e}"))?;
        if !named.file_type().is_file() {
            return Err(format!(
                "{file} is not a regular file (a link is not followed)"
            ));
        }
        let mut opened = std::fs::File::open(path)
            .map_err(|e| format!("cannot read the signing key {file}: {e}"))?;
        let held = opened.metadata().map_err(|e| format!("{file}: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
            // The file opened is the one checked (not one put in its place meanwhile).
            if (held.dev(), held.ino()) != (named.dev(), named.ino()) {
                return Err(format!("{file} changed while it was read; try again"));
            }
            if held.uid() != rustix::process::geteuid().as_raw() {
                return Err(format!(
                    "{file} belongs to another user: the signing key must be this user's own"
                ));
            }
            let mode = held.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{file} may be read by others (mode {:o}); the signing key must be its \
                     owner's only: chmod 600 {file}",
                    mode & 0o777
                ));
            }
        }
        let mut text = String::new();
        opened
            .by_ref()
            .take(256)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the signing key {file}: {e}"))?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key)
            .map_err(|_| format!("{file} is not a signing key: it holds 64 hexadecimal digits"))?;
        Ok(Self(key))
    }

    /// The key in the file at `path` (see [`SigningKey::load`]); a missing file is made,
    /// whole and at once, with a new random key, readable by its owner only. Whether it
    /// was made.
    pub fn load_or_create(path: &std::path::Path) -> Result<(Self, bool), String> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            _ => return Self::load(path).map(|key| (key, false)),
        }
        let file = path.display();
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| format!("no randomness for a key: {e}"))?;
        // Written to a file of its own, then linked in place: nobody reads it half
        // written, and a file made meanwhile by another process is kept.
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| format!("no randomness for a key: {e}"))?;
        let draft = path.with_file_name(format!(
            ".{}.{}",
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            hex::encode(suffix)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&draft).and_then(|mut out| {
            std::io::Write::write_all(&mut out, format!("{}\n", hex::encode(key)).as_bytes())?;
            out.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&draft, path));
        let _ = std::fs::remove_file(&draft);
        match linked {
            Ok(()) => Ok((Self(key), true)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load(path).map(|key| (key, false))
            }
            Err(e) => Err(format!("cannot make the signing key {file}: {e}")),
        }
    }

    /// The key web sessions are signed with, for every server that shares this key.
    pub fn session_key(&self) -> [u8; 32] {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"wasp session key v1");
        mac.finalize().into_bytes().into()
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

/// Who unrevoked `key` is; `None` once it is revoked.
fn identity_of(key: ApiKey) -> Option<Identity> {
    if key.revoked_at.is_some() {
        return None;
    }
    Some(Identity {
        role: Role::named(&key.role)?,
        subject: Some(key.id),
        tenant: key.tenant,
        app: None,
    })
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
    /// Who `token` is: the server's own token (`server_token`), an unrevoked key's, or a
    /// JWT the configured identity provider signed; `None` for anything else.
    pub async fn identify(&self, server_token: &str, token: &str) -> Option<Identity> {
        if crate::constant_time_eq(token.as_bytes(), server_token.as_bytes()) {
            return Some(Identity::bootstrap());
        }
        if let Some(jwt) = &self.jwt
            && super::jwt::JwtConfig::looks_like(token)
        {
            return jwt
                .identify(token)
                .inspect_err(|why| tracing::debug!(%why, "a JWT was refused"))
                .ok();
        }
        let (id, secret) = parts(token)?;
        let key = self.cached_key(id).await?;
        let matches =
            crate::constant_time_eq(sha256_hex(secret).as_bytes(), key.secret_sha256.as_bytes());
        if !matches {
            return None;
        }
        identity_of(key)
    }

    /// Who the unrevoked key `id` is, and its signing secret, to check a request it
    /// signed; `None` when there is no such key, or the server has no signing key.
    pub async fn signer(&self, id: &str) -> Option<(Identity, String)> {
        let signing = self.signing.as_ref()?;
        let key = self.cached_key(id).await?;
        let secret = signing.secret_of(&key.id);
        Some((identity_of(key)?, secret))
    }

    /// A web session's cookie value for the caller whose password (basic auth) is
    /// `password`, when it is the server's own token (`server_token`) or an unrevoked
    /// API key's token: Splunk SOAR's clients log in once and send the session's cookie
    /// after. `None` for anything else (a JWT is sent each time). Nothing is stored: the
    /// value names the key and when it ends, under the server's session key, and the key
    /// is checked again at each use (a revoked key's sessions end with it).
    pub async fn session_for(&self, server_token: &str, password: &str) -> Option<String> {
        let subject = if crate::constant_time_eq(password.as_bytes(), server_token.as_bytes()) {
            BOOTSTRAP_SESSION.to_owned()
        } else {
            self.identify(server_token, password).await?;
            parts(password)?.0.to_owned()
        };
        let ends = Utc::now().timestamp() + SESSION_FOR.as_secs() as i64;
        let signed = format!("{subject}.{ends}");
        let mac = hex::encode(self.session_mac(server_token, &signed)?);
        Some(format!("{signed}.{mac}"))
    }

    /// Who the session cookie `value` (see [`Service::session_for`]) is, while it lasts,
    /// its key is not revoked and the server's token (`server_token`) is the one it was
    /// made under.
    pub async fn session(&self, server_token: &str, value: &str) -> Option<Identity> {
        if value.len() > 256 {
            return None;
        }
        let (signed, mac) = value.rsplit_once('.')?;
        let mac = hex::decode(mac).ok()?;
        if !crate::constant_time_eq(&mac, &self.session_mac(server_token, signed)?) {
            return None;
        }
        let (subject, ends) = signed.rsplit_once('.')?;
        if ends.parse::<i64>().ok()? <= Utc::now().timestamp() {
            return None;
        }
        if subject == BOOTSTRAP_SESSION {
            return Some(Identity::bootstrap());
        }
        identity_of(self.cached_key(subject).await?)
    }

    /// The MAC of a session's `signed` part, under the session key and the server's
    /// token: a new token ends every session (the bootstrap admin's first).
    fn session_mac(&self, server_token: &str, signed: &str) -> Option<Vec<u8>> {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(self.session_key.as_ref()?)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"wasp session v1\0");
        mac.update(&Sha256::digest(server_token.as_bytes()));
        mac.update(signed.as_bytes());
        Some(mac.finalize().into_bytes().to_vec())
    }

    /// Whether the server has a signing key, and so checks signed requests.
    pub fn checks_signatures(&self) -> bool {
        self.signing.is_some()
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
    fn a_signing_key_is_made_once_its_owners_only_and_never_read_through_a_link() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wasp.key");
        let (made, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(made.secret_of("key_1"), again.secret_of("key_1"));
        assert_ne!(made.secret_of("key_1"), made.secret_of("key_2"));
        // Nothing but the key file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(SigningKey::load(&path).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(
            SigningKey::load(&link)
                .unwrap_err()
                .contains("not a regular file")
        );
        let dangling = dir.path().join("dangling.key");
        std::os::unix::fs::symlink(dir.path().join("gone"), &dangling).unwrap();
        assert!(SigningKey::load_or_create(&dangling).is_err());
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not hex").unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            SigningKey::load(&bad)
                .unwrap_err()
                .contains("64 hexadecimal digits")
        );
        assert!(SigningKey::load(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn bad_names_tenants_and_roles_are_refused_saying_why() {
        let refused = |name: &str, tenant: &str, role: &str| match new_key(name, tenant, role) {
            Err(Error::Invalid(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused("", DEFAULT_TENANT, "viewer").contains("1 to 128"));
        assert!(refused("a\nb", DEFAULT_TENANT, "viewer").contains("control"));
        for tenant in [
            "",
            "Acme",
            "-acme",
            "acme-",
            "ac--me",
            "acme_eu",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(
                refused("ci", tenant, "viewer").contains("not a tenant's name"),
                "{tenant:?}"
            );
        }
        assert!(new_key("ci", "acme-2-eu", "viewer").is_ok());
        assert!(refused("ci", DEFAULT_TENANT, "root").contains("role `root` is not one"));
    }
}
