//! Sending residents' letters: the [`LetterChannel`] interface, the `post` channel
//! ([`PostChannel`], a spool directory a print house collects) and the [`LetterDispatcher`], which
//! claims due letters (`FOR UPDATE SKIP LOCKED` under a lease, so two replicas never send the same
//! letter at once), sends each through the channel and records the outcome: `sent` (never sent
//! again); a transient error is retried with exponential backoff until
//! `notification.letters.max_attempts` attempts are spent, a permanent error at once, and the
//! letter is then `failed` with the reason in `last_error` (listed by `ListLetters`, logged at
//! error level).
//!
//! Delivery is at least once: a dispatcher that dies after sending but before recording the
//! outcome leaves the letter pending, and it is sent again when the lease expires. The post
//! channel makes that harmless (the same file name, replaced atomically with the same content).
//!
//! Logs carry the letter id, municipality, kind and channel, never the text, name or address.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rz_platform::Shutdown;
use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::config::LettersConfig;
use crate::metrics::{LetterMetrics, Outcome};
use crate::secrets::Keyring;
use crate::store::{self, StoredLetter};

/// Why a channel could not send a letter. The message is logged and stored as the letter's
/// `last_error`: it must not carry personal data (no name, address or e-mail address).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Worth another attempt later (disk full, relay down, timeout).
    #[error("{0}")]
    Transient(String),
    /// Will never succeed for this letter; it fails at once.
    #[error("{0}")]
    Permanent(String),
}

/// The future a channel's `send` returns (boxed, so channels can be used as `dyn LetterChannel`).
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ChannelError>> + Send + 'a>>;

/// A way letters leave the platform (post, e-mail). `send` must be safe to repeat for the same
/// letter: delivery is at least once.
pub trait LetterChannel: Send + Sync {
    /// Recorded with a sent or failed letter (`post`, `smtp`, ...).
    fn name(&self) -> &'static str;
    fn send<'a>(&'a self, letter: &'a StoredLetter) -> SendFuture<'a>;
}

/// Channel `post`: each letter as the UTF-8 text file `<spool_dir>/<municipality>/<letter id>.txt`.
/// The file is written as `.<letter id>.<claim>.tmp` in the same directory, synced, and renamed,
/// so a print house that collects `*.txt` never sees a half-written letter. Sending a letter again
/// replaces the file with the same content.
#[derive(Debug, Clone)]
pub struct PostChannel {
    spool: PathBuf,
}

impl PostChannel {
    /// Creates the spool directory when it is missing.
    pub fn new(spool: impl Into<PathBuf>) -> std::io::Result<Self> {
        let spool = spool.into();
        std::fs::create_dir_all(&spool)?;
        Ok(Self { spool })
    }

    /// Where the letter's file goes; a municipality that is not a 4-digit CBS code is refused
    /// (it names a directory).
    pub fn path_of(&self, letter: &StoredLetter) -> Result<PathBuf, ChannelError> {
        let m = &letter.municipality;
        if m.len() != 4 || !m.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ChannelError::Permanent(format!(
                "municipality of letter {} is not a 4-digit CBS code",
                letter.id
            )));
        }
        Ok(self.spool.join(m).join(format!("{}.txt", letter.id)))
    }
}

impl LetterChannel for PostChannel {
    fn name(&self) -> &'static str {
        "post"
    }

    fn send<'a>(&'a self, letter: &'a StoredLetter) -> SendFuture<'a> {
        Box::pin(async move {
            let path = self.path_of(letter)?;
            let tmp_name = format!(".{}.{}.tmp", letter.id, letter.claim);
            let text = letter.text.clone();
            tokio::task::spawn_blocking(move || write_atomically(&path, &tmp_name, &text))
                .await
                .map_err(|e| ChannelError::Transient(format!("spool writer: {e}")))?
                .map_err(|e| ChannelError::Transient(format!("spool: {e}")))
        })
    }
}

fn write_atomically(path: &Path, tmp_name: &str, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("letter path has no directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename itself survives a crash once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

/// Claims due letters and sends them through one channel.
#[derive(Clone)]
pub struct LetterDispatcher {
    pool: PgPool,
    /// Opens the letters' sealed texts.
    keys: Arc<Keyring>,
    channel: Arc<dyn LetterChannel>,
    config: Arc<LettersConfig>,
    /// Attempts by outcome (none in tests that build a dispatcher alone).
    metrics: Option<LetterMetrics>,
}

impl LetterDispatcher {
    pub fn new(
        pool: PgPool,
        keys: Arc<Keyring>,
        channel: Arc<dyn LetterChannel>,
        config: LettersConfig,
    ) -> Self {
        Self {
            pool,
            keys,
            channel,
            config: Arc::new(config),
            metrics: None,
        }
    }

    /// Counts the attempts by outcome in `metrics`.
    pub fn with_metrics(mut self, metrics: LetterMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, outcome: Outcome) {
        if let Some(m) = &self.metrics {
            m.attempt(outcome);
        }
    }

    /// Claims up to `max_in_flight` due letters, sends them concurrently and records each
    /// outcome. Returns how many it claimed.
    pub async fn dispatch_once(&self) -> Result<usize, sqlx::Error> {
        let limit = i64::try_from(self.config.max_in_flight.max(1)).unwrap_or(1);
        let lease = i64::try_from(self.config.lease_ms).unwrap_or(i64::MAX);
        let claimed = store::claim_due_letters(&self.pool, &self.keys, limit, lease).await?;
        let n = claimed.len();
        let mut sends = JoinSet::new();
        for letter in claimed {
            let this = self.clone();
            sends.spawn(async move { this.attempt(letter).await });
        }
        while let Some(done) = sends.join_next().await {
            if let Err(e) = done {
                // The lease expires and the letter is taken again.
                tracing::error!(error = %e, "letter send task failed");
            }
        }
        Ok(n)
    }

    /// Dispatches until `shutdown`; a batch in flight is finished first.
    pub async fn run(self, shutdown: Shutdown) {
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(1));
        tracing::info!(channel = self.channel.name(), "letter dispatcher started");
        while !shutdown.is_triggered() {
            let idle = match self.dispatch_once().await {
                Ok(n) => n == 0,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim letters");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        }
        tracing::info!("letter dispatcher stopped");
    }

    async fn attempt(&self, letter: StoredLetter) {
        let channel = self.channel.name();
        let attempts = u32::try_from(letter.attempts).unwrap_or(0) + 1;
        let timeout = Duration::from_millis(self.config.send_timeout_ms);
        let result = match tokio::time::timeout(timeout, self.channel.send(&letter)).await {
            Ok(r) => r,
            Err(_) => Err(ChannelError::Transient(format!(
                "timed out after {} ms",
                self.config.send_timeout_ms
            ))),
        };
        let (id, claim) = (letter.id, letter.claim);
        let (municipality, kind) = (letter.municipality.as_str(), letter.kind.as_str());
        let outcome = match result {
            Ok(()) => {
                tracing::info!(letter = %id, municipality, kind, channel, attempts, "letter sent");
                self.count(Outcome::Ok);
                store::mark_letter_sent(&self.pool, id, claim, channel).await
            }
            Err(error) => {
                let permanent = matches!(error, ChannelError::Permanent(_));
                if permanent || attempts >= self.config.max_attempts {
                    let reason = format!("{channel}: {error}");
                    tracing::error!(
                        letter = %id, municipality, kind, channel, attempts, permanent,
                        error = %error, "letter failed for good"
                    );
                    self.count(Outcome::GaveUp);
                    store::mark_letter_failed(&self.pool, id, claim, channel, &reason).await
                } else {
                    let delay = self.config.backoff(attempts);
                    tracing::warn!(
                        letter = %id, municipality, kind, channel, attempts, error = %error,
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "letter send failed"
                    );
                    self.count(Outcome::Retry);
                    let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                    let reason = format!("{channel}: {error}");
                    store::schedule_retry(&self.pool, store::Queue::Letters, id, claim, &reason, ms)
                        .await
                }
            }
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => tracing::warn!(letter = %id, "claim lost before the outcome was recorded"),
            // The lease expires and the letter is attempted again (at least once).
            Err(e) => tracing::warn!(letter = %id, error = %e, "cannot record the letter outcome"),
        }
    }
}
