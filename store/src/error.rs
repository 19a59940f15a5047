//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
///
/// No variant carries a room key or any record content, so an error can be logged as is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled itself failed (I/O, its own checksums, a bug it reports).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),

    /// A stored value or index key is not something this version can read: an unknown format
    /// version (for instance after a downgrade), truncated bytes, trailing bytes, or a field
    /// that does not decode.
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

    /// The data directory could not be created.
    #[error("cannot create store directory {path}: {source}")]
    Io {
        /// The directory that was being created.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}
