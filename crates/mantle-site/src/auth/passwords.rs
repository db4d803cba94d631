//! Password hashing and checking on a few threads of their own.
//!
//! An argon2id check (the default parameters) costs 19 MiB of memory and
//! tens of milliseconds of CPU, and a stranger can ask for one with every
//! login attempt. So checks never run on the async runtime's blocking
//! pool, where each burst would take a thread (and, with the allocator's
//! per-thread arenas, 19 MiB kept) per attempt. Instead:
//!
//! - a fixed number of worker threads run them, each reusing one memory
//!   block it allocated once (`hash_password_into_with_memory`), so the
//!   memory held is `workers × 19 MiB` however many attempts come;
//! - at most `queue` checks wait per lane, in two lanes: *priority* for
//!   logins that look legitimate (a known account and an address, both
//!   without recent failures; see `LoginGuard`) and *other*; a worker
//!   always takes a priority check first, so a flood of failing guesses
//!   delays a real login by one check at most;
//! - past the queue the attempt is refused at once ([`SiteError::Busy`]),
//!   which the front ends answer with 503 and `Retry-After`;
//! - the workers run at a lower CPU priority than the rest of the server
//!   (nice [`WORKER_NICENESS`] on Linux): under a flood of guesses they
//!   are busy all the time, and at the same priority they would hold the
//!   cores whenever a request comes in, adding milliseconds to every
//!   answer. Lowered, they take what serving requests leaves, which is
//!   most of it, as the suspects' gate (see `suspects`) bounds what
//!   serving a flood takes.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::{Result, SiteError};

/// Memory a stored hash may ask for (blocks of 1 KiB): ours use 19 MiB; a
/// hash asking for more than 64 MiB is treated as not matching rather
/// than allowed to take the memory.
const MAX_BLOCKS: usize = 64 * 1024;

/// How much lower than the server's the workers' CPU priority is (on
/// the nice scale: at 10, a worker gets about a tenth of a core that a
/// busy thread of the server's priority also wants, rather than half).
pub(super) const WORKER_NICENESS: i32 = 10;

/// What a `Busy` refusal tells the client to wait before trying again.
pub(super) const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Which queue a check waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// A login that looks legitimate.
    Priority,
    /// Everything else: unknown logins, accounts or addresses with recent
    /// failures, new passwords.
    Other,
}

enum Job {
    Verify {
        /// `None`: a login that matches no account, checked against a
        /// hash of the worker's own, so it costs what a wrong password
        /// costs (no telling which logins exist by timing).
        hash: Option<String>,
        password: String,
        reply: oneshot::Sender<bool>,
    },
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String>>,
    },
}

/// The password workers of a site. Cloning shares them; the threads end
/// when the last clone is dropped.
#[derive(Clone)]
pub(super) struct PasswordWorkers {
    priority: Sender<Job>,
    other: Sender<Job>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

impl PasswordWorkers {
    /// Starts `workers` threads with room for `queue` waiting checks per
    /// lane.
    pub(super) fn start(workers: usize, queue: usize) -> Result<Self> {
        let (priority, priority_rx) = crossbeam_channel::bounded(queue);
        let (other, other_rx) = crossbeam_channel::bounded(queue);
        let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for n in 0..workers.max(1) {
            let (p, o, w) = (priority_rx.clone(), other_rx.clone(), waiting.clone());
            std::thread::Builder::new()
                .name(format!("mantle-passwords-{n}"))
                .spawn(move || work(&p, &o, &w))
                .map_err(|e| SiteError::io("password worker thread", e))?;
        }
        Ok(Self {
            priority,
            other,
            waiting,
        })
    }

    /// Whether `lane` has no room: a check sent there now is refused.
    pub(super) fn full(&self, lane: Lane) -> bool {
        match lane {
            Lane::Priority => self.priority.is_full(),
            Lane::Other => self.other.is_full(),
        }
    }

    /// Checks waiting for a worker (both lanes).
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn submit(&self, lane: Lane, job: Job) -> Result<()> {
        let queue = match lane {
            Lane::Priority => &self.priority,
            Lane::Other => &self.other,
        };
        self.waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.waiting
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                Err(SiteError::Busy {
                    retry_after: BUSY_RETRY_AFTER,
                })
            }
        }
    }

    /// Whether `password` matches the PHC string `hash` (`None`: it
    /// matches nothing, after the same work). A malformed hash never
    /// matches.
    pub(super) async fn verify(
        &self,
        lane: Lane,
        hash: Option<String>,
        password: &str,
    ) -> Result<bool> {
        self.queue_verify(lane, hash, password)?
            .await
            .map_err(|_| SiteError::PasswordWorkersGone)
    }

    /// Queues a check (or refuses it at once); its answer comes on the
    /// receiver.
    fn queue_verify(
        &self,
        lane: Lane,
        hash: Option<String>,
        password: &str,
    ) -> Result<oneshot::Receiver<bool>> {
        let (reply, answer) = oneshot::channel();
        self.submit(
            lane,
            Job::Verify {
                hash,
                password: password.to_string(),
                reply,
            },
        )?;
        Ok(answer)
    }

    /// A new argon2id hash of `password` (checked against the rules
    /// first), in the *other* lane.
    pub(super) async fn hash(&self, password: &str) -> Result<String> {
        check_password(password)?;
        let (reply, answer) = oneshot::channel();
        self.submit(
            Lane::Other,
            Job::Hash {
                password: password.to_string(),
                reply,
            },
        )?;
        answer.await.map_err(|_| SiteError::PasswordWorkersGone)?
    }
}

/// A worker: priority jobs first, one reused memory block.
fn work(priority: &Receiver<Job>, other: &Receiver<Job>, waiting: &std::sync::atomic::AtomicUsize) {
    lower_priority();
    let mut memory: Vec<Block> = Vec::new();
    let mut dummy: Option<String> = None;
    loop {
        let job = match priority.try_recv() {
            Ok(job) => job,
            Err(_) => crossbeam_channel::select! {
                recv(priority) -> j => match j { Ok(j) => j, Err(_) => return },
                recv(other) -> j => match j { Ok(j) => j, Err(_) => return },
            },
        };
        waiting.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        match job {
            Job::Verify {
                hash,
                password,
                reply,
            } => {
                // The caller may have gone (client disconnected): skip.
                if reply.is_closed() {
                    continue;
                }
                let ok = match hash {
                    Some(hash) => verify_with(&mut memory, &hash, &password),
                    None => {
                        if dummy.is_none() {
                            dummy = hash_with(&mut memory, "not a real password").ok();
                        }
                        let hash = dummy.as_deref().unwrap_or_default();
                        std::hint::black_box(verify_with(&mut memory, hash, &password));
                        false
                    }
                };
                let _ = reply.send(ok);
            }
            Job::Hash { password, reply } => {
                let _ = reply.send(hash_with(&mut memory, &password));
            }
        }
    }
}

/// The argon2 instance and output length a PHC string describes.
fn described(hash: &PasswordHash<'_>) -> Option<(Argon2<'static>, usize)> {
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = Version::try_from(hash.version.unwrap_or(0x13)).ok()?;
    let params = Params::try_from(hash).ok()?;
    if params.block_count() > MAX_BLOCKS {
        return None;
    }
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    Some((Argon2::new(algorithm, version, params), len))
}

fn blocks(memory: &mut Vec<Block>, n: usize) -> &mut [Block] {
    if memory.len() < n {
        memory.resize(n, Block::default());
    }
    &mut memory[..n]
}

/// Checks `password` against `hash` with `memory` as argon2's work area.
pub(super) fn verify_with(memory: &mut Vec<Block>, hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let Some((argon, len)) = described(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let n = argon.params().block_count();
    let mut out = vec![0u8; len];
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks(memory, n))
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// A new argon2id hash (default parameters, random salt) of `password`.
pub(super) fn hash_with(memory: &mut Vec<Block>, password: &str) -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| SiteError::NoRandomness(e.to_string()))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| SiteError::Hashing(e.to_string()))?;
    let argon = Argon2::default();
    let n = argon.params().block_count();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let mut salt_raw = [0u8; 64];
    let salt_raw = salt
        .as_salt()
        .decode_b64(&mut salt_raw)
        .map_err(|e| SiteError::Hashing(e.to_string()))?;
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, blocks(memory, n))
        .map_err(|e| SiteError::Hashing(e.to_string()))?;
    let output = Output::new(&out).map_err(|e| SiteError::Hashing(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon
            .params()
            .try_into()
            .map_err(|e: argon2::password_hash::Error| SiteError::Hashing(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// The rules a new password must meet.
pub(super) fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < 8 {
        return Err(SiteError::WeakPassword("at least 8 characters"));
    }
    if password.len() > 1024 {
        return Err(SiteError::WeakPassword("at most 1024 bytes"));
    }
    Ok(())
}

/// Lowers the calling thread's CPU priority by [`WORKER_NICENESS`].
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread, no pointers. On
    // Linux a thread id names one thread for PRIO_PROCESS, and nice values
    // are per thread.
    let done = unsafe {
        let tid = libc::gettid() as libc::id_t;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, now + WORKER_NICENESS)
    };
    if done != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot lower a password worker's priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[test]
    fn our_hashes_are_standard_argon2id_and_verify_with_argon2s_own_code() {
        let mut memory = Vec::new();
        let h = hash_with(&mut memory, "correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(verify_with(&mut memory, &h, "correct horse"));
        assert!(!verify_with(&mut memory, &h, "wrong horse"));
    }

    #[test]
    fn hashes_made_by_argon2s_own_code_verify() {
        use argon2::PasswordHasher;
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let h = Argon2::default()
            .hash_password(b"pa55word!", &salt)
            .unwrap()
            .to_string();
        let mut memory = Vec::new();
        assert!(verify_with(&mut memory, &h, "pa55word!"));
        assert!(!verify_with(&mut memory, &h, "pa55word?"));
    }

    #[test]
    fn malformed_or_greedy_hashes_never_match() {
        let mut memory = Vec::new();
        assert!(!verify_with(&mut memory, "garbage", "x"));
        assert!(!verify_with(&mut memory, "", ""));
        // A hash asking for 1 GiB is refused without allocating it.
        let greedy = "$argon2id$v=19$m=1048576,t=2,p=1$c2l4dGVlbiBieXRlIHNsdA$\
                      AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!verify_with(&mut memory, greedy, "x"));
        assert!(memory.len() <= MAX_BLOCKS);
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_priority_goes_first() {
        // One worker, room for one waiting check per lane.
        let workers = PasswordWorkers::start(1, 1).unwrap();
        // A slow hash (16 passes), so the worker is surely busy while the
        // lane fills.
        let hash = {
            use argon2::PasswordHasher;
            let params = Params::new(19 * 1024, 16, 1, None).unwrap();
            let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"correct horse", &salt)
                .unwrap()
                .to_string()
        };
        // Waits (boundedly) until no check waits: the worker took it.
        let taken = async || {
            for _ in 0..2000 {
                if workers.waiting() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("the worker took nothing");
        };
        // Keep the worker busy, fill the other lane, then overflow it.
        let busy = workers
            .queue_verify(Lane::Other, Some(hash.clone()), "a")
            .unwrap();
        taken().await;
        let queued = workers
            .queue_verify(Lane::Other, Some(hash.clone()), "b")
            .unwrap();
        assert_eq!(workers.waiting(), 1);
        let overflow = workers.verify(Lane::Other, Some(hash.clone()), "c").await;
        assert!(
            matches!(overflow, Err(SiteError::Busy { .. })),
            "{overflow:?}"
        );
        // The priority lane still has room, and is served.
        assert!(
            workers
                .verify(Lane::Priority, Some(hash.clone()), "correct horse")
                .await
                .unwrap()
        );
        assert!(!busy.await.unwrap());
        assert!(!queued.await.unwrap());
        assert_eq!(workers.waiting(), 0);
    }
}
