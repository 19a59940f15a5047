//! The `stelgano` command line: flags, exit codes, and how every outcome becomes a message on
//! stderr and a code a script can rely on. Only results go to stdout.

mod commands;
mod secrets;

use clap::{Args, Parser, Subcommand};
use stelgano_client::{ClientError, RelayUrl};
use stelgano_proto::Reason;

/// Exit codes; `stelgano --help` and docs/CLIENT.md list them.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NO_MESSAGE: u8 = 3;
    pub const TIMED_OUT: u8 = 4;
    pub const DENIED: u8 = 5;
    pub const LOCKED: u8 = 6;
    pub const NOT_YOUR_TURN: u8 = 7;
    pub const NO_CHANNEL: u8 = 8;
    pub const EXISTS: u8 = 9;
    pub const UNDECRYPTABLE: u8 = 10;
    pub const UNAVAILABLE: u8 = 11;
}

const AFTER_HELP: &str = "\
The steg number comes from STELGANO_PHONE or a prompt; the PIN from STELGANO_PIN or a hidden
prompt. Neither is ever accepted as a flag (flags land in shell history) nor printed. The two
parties of a channel share the number and each pick their own, different PIN.

A new user:
  alice$ stelgano create                  # prints a pairing code, e.g. 7K3M-9QXZ
  bob$   stelgano join --code 7K3M-9QXZ   # same number, Bob's own PIN
  alice$ stelgano send 'hello'
  bob$   stelgano read --wait             # prints: hello
  bob$   stelgano send 'hi back'

Exit codes:
   0  success
   1  any other error (network failure, relay error, unexpected reply)
   2  usage or input error (bad flags, empty PIN, unusable number or URL)
   3  read: nothing to read (the channel is empty, or the last message is yours)
   4  read --wait: timed out
   5  access refused: wrong PIN (attempts remaining shown), wrong or missing pairing code
   6  locked after too many wrong attempts (the message says for how long)
   7  not your turn, or the message can no longer be edited or deleted
   8  no such channel: never created, expired, or burned
   9  create: a channel with this number already exists
  10  a message failed to decrypt (wrong key, or altered in transit)
  11  relay unreachable or limiting this address; retry later";

/// The sTELgano command-line client: one-message-at-a-time private channels on a relay.
#[derive(Debug, Parser)]
#[command(name = "stelgano", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Relay URL (ws:// or http://).
    #[arg(
        long,
        global = true,
        env = "STELGANO_RELAY",
        default_value = "ws://127.0.0.1:8080",
        value_name = "URL"
    )]
    relay: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open a new channel on the steg number; prints the pairing code to give the other party.
    Create {
        /// The channel exists and still waits for its second party: issue a new pairing code
        /// (the old one stops working).
        #[arg(long)]
        new_code: bool,
    },
    /// Join a channel: pair with the code you were given, or rejoin your own seat.
    Join {
        /// The pairing code (XXXX-XXXX); prompted for when the channel asks for one.
        #[arg(
            long,
            env = "STELGANO_CODE",
            value_name = "CODE",
            hide_env_values = true
        )]
        code: Option<String>,
    },
    /// Encrypt and send a message (the text from the argument, or stdin when absent or "-").
    Send {
        /// The message text.
        text: Option<String>,
    },
    /// Print the other party's message (and mark it read).
    Read(ReadArgs),
    /// Replace the text of your message while it is unread.
    Edit {
        /// The new text (stdin when absent or "-").
        text: Option<String>,
    },
    /// Delete your message while it is unread.
    Delete,
    /// Print the channel's state as one JSON object.
    Status,
    /// Extend the channel's life with an extension token from the relay's operator (the token
    /// from STELGANO_TOKEN or a hidden prompt, never a flag).
    Redeem,
    /// Destroy the channel now, for both parties.
    Burn {
        /// Confirm: burning cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Print the channel's public hashes as one JSON object (offline; no relay contact).
    Derive {
        /// Also hash this pairing code (adds otp_normalised and otp_hash).
        #[arg(long, value_name = "CODE")]
        code: Option<String>,
        /// Also print the AES-256 key (aes_key_hex). It decrypts every message of the channel.
        #[arg(long)]
        show_key: bool,
    },
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// Wait until the other party's message arrives (returns at once if one is waiting).
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds (exit code 4).
    #[arg(long, value_name = "SECS", requires = "wait")]
    timeout: Option<u64>,
    /// Print the message without marking it read.
    #[arg(long)]
    no_receipt: bool,
    /// Print one JSON object {id, text, inserted_at} instead of the bare text.
    #[arg(long)]
    json: bool,
}

/// Why a command did not succeed: a client error, or an outcome the CLI itself decides.
#[derive(Debug)]
enum Failure {
    Client(ClientError),
    /// An outcome with its own exit code and message.
    Plain(u8, String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Plain(code, _) => *code,
            Failure::Client(e) => exit_code(e),
        }
    }
}

/// The exit code of a client error.
fn exit_code(e: &ClientError) -> u8 {
    match e {
        ClientError::Server(body) => match body.reason {
            Reason::Unauthorized
            | Reason::OtpInvalid
            | Reason::OtpRequired
            | Reason::InvalidSender
            | Reason::InvalidAccess
            | Reason::InvalidToken => exit::DENIED,
            Reason::Locked => exit::LOCKED,
            Reason::NotYourTurn | Reason::NotEditable | Reason::NotDeletable | Reason::NotFound => {
                exit::NOT_YOUR_TURN
            }
            Reason::RateLimited => exit::UNAVAILABLE,
            _ => exit::ERROR,
        },
        ClientError::Closed { reason, .. } if reason == "room_expired" => exit::NO_CHANNEL,
        ClientError::Connect { .. } | ClientError::Http { status: 429 } => exit::UNAVAILABLE,
        ClientError::Decrypt(_) => exit::UNDECRYPTABLE,
        ClientError::Input(_)
        | ClientError::InvalidUrl { .. }
        | ClientError::TooLong { .. }
        | ClientError::Terminal(_) => exit::USAGE,
        _ => exit::ERROR,
    }
}

/// Runs one command; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let result = match RelayUrl::parse(&cli.relay) {
        Ok(relay) => commands::dispatch(&relay, cli.command).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => exit::OK,
        Err(failure) => {
            match &failure {
                Failure::Plain(_, msg) => eprintln!("stelgano: {msg}"),
                Failure::Client(e) => eprintln!("stelgano: error: {e}"),
            }
            failure.code()
        }
    }
}
