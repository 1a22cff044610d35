//! Password hashing: argon2id for every stored password; the original's unsalted SHA-256 hex
//! digests are still verified, and the caller re-hashes them after a successful login.
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use std::sync::{mpsc, Arc, LazyLock, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// argon2id needs 19 MiB and tens of milliseconds per call. It runs on a few dedicated threads
/// (one per core): a login burst queues instead of oversubscribing the CPUs, and the memory stays
/// bounded (each thread reuses its allocator arena, where the blocking pool would spread the 19 MiB
/// blocks over dozens of threads' arenas).
static HASHING_THREADS: LazyLock<mpsc::Sender<Job>> = LazyLock::new(|| {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for i in 0..std::thread::available_parallelism().map_or(2, |n| n.get()) {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || loop {
            let next = match receiver.lock() {
                Ok(queue) => queue.recv(),
                Err(_) => return,
            };
            match next {
                Ok(job) => job(),
                Err(_) => return, // the sender is gone: the process is ending
            }
        });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "could not start a hashing thread");
        }
    }
    sender
});

async fn on_hashing_slot<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (done, result) = tokio::sync::oneshot::channel();
    HASHING_THREADS
        .send(Box::new(move || {
            let _ = done.send(work());
        }))
        .map_err(|_| "the hashing threads are gone".to_owned())?;
    result.await.map_err(|_| "a hashing thread failed".to_owned())
}

/// [`hash`] off the async runtime, within the hashing slots.
pub async fn hash_off_runtime(password: String) -> Result<String, String> {
    on_hashing_slot(move || hash(&password)).await?
}

/// [`verify`] off the async runtime. Without a stored hash a decoy is verified, so an unknown
/// user costs the same time as a wrong password.
pub async fn verify_off_runtime(stored: Option<String>, candidate: String) -> Result<Verdict, String> {
    on_hashing_slot(move || match stored {
        Some(stored) => verify(&stored, &candidate),
        None => {
            static DECOY: OnceLock<String> = OnceLock::new();
            let _ = verify(DECOY.get_or_init(|| hash("decoy password").unwrap_or_default()), &candidate);
            Verdict::Invalid
        }
    })
    .await
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid { needs_upgrade: bool },
    Invalid,
}

pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

pub fn verify(stored: &str, candidate: &str) -> Verdict {
    if is_legacy_sha256(stored) {
        let digest = hex::encode(Sha256::digest(candidate.as_bytes()));
        return if bool::from(digest.as_bytes().ct_eq(stored.to_ascii_lowercase().as_bytes())) {
            Verdict::Valid { needs_upgrade: true }
        } else {
            Verdict::Invalid
        };
    }
    match PasswordHash::new(stored) {
        Ok(parsed) if Argon2::default().verify_password(candidate.as_bytes(), &parsed).is_ok() => {
            Verdict::Valid { needs_upgrade: false }
        }
        _ => Verdict::Invalid,
    }
}

fn is_legacy_sha256(stored: &str) -> bool {
    stored.len() == 64 && stored.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The original's storage format, for migrating users and for tests.
pub fn legacy_sha256(password: &str) -> String {
    hex::encode(Sha256::digest(password.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let h = hash("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(verify(&h, "s3cret"), Verdict::Valid { needs_upgrade: false });
        assert_eq!(verify(&h, "nope"), Verdict::Invalid);
    }

    #[test]
    fn legacy_digest_is_accepted_and_flagged_for_upgrade() {
        let legacy = legacy_sha256("admin");
        assert_eq!(legacy, "8c6976e5b5410415bde908bd4dee15dfb167a9c873fc4bb8a81f6f2ab448a918");
        assert_eq!(verify(&legacy, "admin"), Verdict::Valid { needs_upgrade: true });
        assert_eq!(verify(&legacy, "Admin"), Verdict::Invalid);
        assert_eq!(verify("garbage", "x"), Verdict::Invalid);
    }
}
