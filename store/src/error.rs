//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
///
/// No variant carries a room hash, a locator or any record content, so an error can be logged
/// as is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled itself failed (I/O, its own checksums, a bug it reports).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),

    /// A stored value or index key is not something this version can read: an unknown format
    /// version (for instance after a downgrade), truncated bytes, a value that does not open
    /// under the room's keys (tampered, moved, or sealed for another room), a header that
    /// disagrees with the sealed record, or a field that does not decode.
    #[error("corrupt store data: {0}")]
    Corrupt(&'static str),

    /// A record could not be encoded. The record types have a fixed shape, so this points at a
    /// bug rather than at bad input.
    #[error("cannot encode room record: {0}")]
    Encode(String),

    /// The blocking task that runs a flush panicked or was cancelled (the runtime is shutting
    /// down), so the flush may not have happened.
    #[error("store flush did not complete")]
    FlushAborted,

    /// The store is unhealthy and has no database to work with: a recovery closed the failed
    /// one and could not yet open its replacement, or a failure came in while it probed.
    #[error("store is unhealthy and recovering")]
    Unhealthy,

    /// The database is held by another process (a running relay) and stayed locked past a
    /// short wait.
    #[error("{path} is in use by another process (is the relay running?)")]
    Busy {
        /// The database directory.
        path: PathBuf,
    },

    /// A record cannot be moved between nodes as asked (see `Store::insert_sealed`).
    #[error("cannot move record: {0}")]
    Move(&'static str),

    /// A failure injected by `Store::set_fail_writes` (feature `fault-injection`).
    #[error("injected store write failure")]
    Injected,

    /// A file or directory of the data directory could not be created, listed or deleted.
    #[error("store directory {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}
