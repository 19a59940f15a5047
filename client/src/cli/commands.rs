//! One function per `stelgano` command. Results go to stdout, everything said to the user to
//! stderr; neither ever carries the PIN, the key (without `--show-key`) or the relay-facing hashes
//! (outside `derive`).

use std::io::{IsTerminal, Read};
use std::time::Duration;

use serde::Serialize;
use stelgano_client::crypto::{self, Identity, RoomKey};
use stelgano_client::error::{describe, human_duration};
use stelgano_client::http::room_exists;
use stelgano_client::{Client, ClientError, Event, JoinOptions, Message, RelayUrl, Room};
use stelgano_proto::Reason;
use zeroize::Zeroizing;

use super::{exit, secrets, Command, Failure, ReadArgs};

/// Wait for the `exists` look-up.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) async fn dispatch(relay: &RelayUrl, command: Command) -> Result<(), Failure> {
    match command {
        Command::Create { new_code } => create(relay, new_code).await,
        Command::Join { code } => join(relay, code).await,
        Command::Send { text } => send(relay, text).await,
        Command::Read(args) => read(relay, args).await,
        Command::Edit { text } => edit(relay, text).await,
        Command::Delete => delete(relay).await,
        Command::Status => status(relay).await,
        Command::Burn { yes } => burn(relay, yes).await,
        Command::Redeem => redeem(relay).await,
        Command::Derive { code, show_key } => derive(code, show_key).await,
    }
}

/// Number and PIN from the environment or the terminal, checked for use with a relay.
fn identity(confirm_pin: bool) -> Result<Identity, Failure> {
    let phone = secrets::phone()?;
    let pin = secrets::pin(confirm_pin)?;
    Ok(Identity::derive(&phone, &pin)?)
}

/// Starts PBKDF2 on a blocking thread at once: it needs only the number, and takes long enough
/// to overlap with the network round trips.
fn start_key(identity: &Identity) -> tokio::task::JoinHandle<RoomKey> {
    let for_key = identity.clone();
    tokio::task::spawn_blocking(move || for_key.derive_key())
}

async fn finish_key(task: tokio::task::JoinHandle<RoomKey>) -> Result<RoomKey, Failure> {
    task.await
        .map_err(|e| Failure::Plain(exit::ERROR, format!("key derivation failed: {e}")))
}

fn no_channel() -> Failure {
    Failure::Plain(
        exit::NO_CHANNEL,
        "no channel for that number: it was never created, has expired, or was burned \
         (check the number; `stelgano create` opens a new one)"
            .to_owned(),
    )
}

/// The reasons a join can fail with, worded for where the user stands.
fn explain_join(e: ClientError, had_code: bool) -> Failure {
    match &e {
        ClientError::Server(body) if body.reason == Reason::OtpRequired => Failure::Plain(
            exit::DENIED,
            "this channel waits for its second party: pair with `stelgano join --code XXXX-XXXX` \
             (with your own PIN, different from the creator's)"
                .to_owned(),
        ),
        ClientError::Server(body) if body.reason == Reason::Unauthorized && had_code => {
            Failure::Plain(
                exit::DENIED,
                format!(
                    "{}; or the channel was already claimed by someone else",
                    describe(body)
                ),
            )
        }
        _ => Failure::Client(e),
    }
}

fn warn_failed_attempts(room: &Room) {
    let n = room.info().failed_attempts;
    if n > 0 {
        let times = if n == 1 { "once" } else { "times" };
        let n = if n == 1 {
            String::new()
        } else {
            format!("{n} ")
        };
        eprintln!("warning: someone tried to open this channel {n}{times} since your last visit");
    }
}

/// Joins a room that must already exist (so a typo in the number never creates a room).
async fn open_existing(relay: &RelayUrl, identity: Identity) -> Result<Room, Failure> {
    let key = start_key(&identity);
    if !room_exists(relay, identity.room_hash(), LOOKUP_TIMEOUT).await? {
        return Err(no_channel());
    }
    let client = Client::connect(relay, identity).await?;
    let key = finish_key(key).await?;
    let room = client
        .join(key, JoinOptions::default())
        .await
        .map_err(|e| explain_join(e, false))?;
    warn_failed_attempts(&room);
    Ok(room)
}

async fn create(relay: &RelayUrl, new_code: bool) -> Result<(), Failure> {
    let identity = identity(true)?;
    let digits = identity.normalised_phone().len();
    if !(7..=15).contains(&digits) {
        return Err(Failure::Plain(
            exit::USAGE,
            format!(
                "a steg number is an international (E.164) number of 7 to 15 digits; this one has {digits}"
            ),
        ));
    }
    let key = start_key(&identity);
    let exists = room_exists(relay, identity.room_hash(), LOOKUP_TIMEOUT).await?;
    if exists && !new_code {
        return Err(Failure::Plain(
            exit::EXISTS,
            "a channel with this number already exists. Rejoin it with `stelgano join`, pair with \
             it with `stelgano join --code ...`, or, if it is yours and still waits for the other \
             party, issue a new code with `stelgano create --new-code`"
                .to_owned(),
        ));
    }
    if !exists && new_code {
        return Err(Failure::Plain(
            exit::NO_CHANNEL,
            "no channel with this number yet; run `stelgano create` without --new-code".to_owned(),
        ));
    }
    let code = crypto::new_pairing_code();
    let client = Client::connect(relay, identity).await?;
    let key = finish_key(key).await?;
    let room = if exists {
        let mut room = client
            .join(key, JoinOptions::default())
            .await
            .map_err(|e| match &e {
                ClientError::Server(b) if b.reason == Reason::OtpRequired => Failure::Plain(
                    exit::EXISTS,
                    "this number's channel waits for its second party, and it is not yours \
                     (another PIN created it); pair with `stelgano join --code ...`"
                        .to_owned(),
                ),
                _ => Failure::Client(e),
            })?;
        if !room.info().awaiting_party {
            room.close().await;
            return Err(Failure::Plain(
                exit::EXISTS,
                "this channel is already paired; there is no code to renew".to_owned(),
            ));
        }
        room.reset_pairing(&code).await?;
        room
    } else {
        let options = JoinOptions {
            pairing_code: Some(code.clone()),
            extension_secret: None,
        };
        let room = client.join(key, options).await?;
        if !room.info().awaiting_party {
            // Someone created the room between the look-up and the join, and this join landed
            // on an existing seat; the code just generated means nothing to that room.
            room.close().await;
            return Err(Failure::Plain(
                exit::EXISTS,
                "a channel with this number appeared meanwhile; run `stelgano join`".to_owned(),
            ));
        }
        room
    };
    warn_failed_attempts(&room);
    let shown = crypto::format_otp(&code);
    println!("{shown}");
    eprintln!(
        "{} Give the other party the number and this pairing code (it works once):\n  {shown}\n\
         They run `stelgano join --code {shown}` with the same number and a PIN of their own \
         (different from yours). The channel expires at {}.",
        if exists {
            "New pairing code issued; the old one no longer works."
        } else {
            "Channel created."
        },
        room.info().ttl_expires_at
    );
    room.close().await;
    Ok(())
}

async fn join(relay: &RelayUrl, code: Option<String>) -> Result<(), Failure> {
    let identity = identity(false)?;
    let key = start_key(&identity);
    if !room_exists(relay, identity.room_hash(), LOOKUP_TIMEOUT).await? {
        return Err(no_channel());
    }
    let key = finish_key(key).await?;
    let mut code = code.map(Zeroizing::new);
    let room = loop {
        let client = Client::connect(relay, identity.clone()).await?;
        let options = JoinOptions {
            pairing_code: code.as_ref().map(|c| c.to_string()),
            extension_secret: None,
        };
        match client.join(key.clone(), options).await {
            Ok(room) => break room,
            Err(ClientError::Server(body))
                if body.reason == Reason::OtpRequired && code.is_none() =>
            {
                // Without a terminal to ask on, say what is missing rather than fail the prompt.
                match secrets::pairing_code() {
                    Ok(typed) => code = Some(typed),
                    Err(_) => return Err(explain_join(ClientError::Server(body), false)),
                }
            }
            Err(e) => return Err(explain_join(e, code.is_some())),
        }
    };
    warn_failed_attempts(&room);
    let info = room.info();
    if info.awaiting_party {
        eprintln!("Joined your channel; the other party has not paired yet.");
    } else if code.is_some() {
        eprintln!(
            "Paired: the channel is ready. It expires at {}.",
            info.ttl_expires_at
        );
    } else {
        eprintln!("Joined the channel. It expires at {}.", info.ttl_expires_at);
    }
    match room.current() {
        Some(m) if !m.mine => {
            eprintln!("A message from the other party is waiting: `stelgano read`.")
        }
        Some(m) if m.read => eprintln!("Your last message was read; waiting for the reply."),
        Some(_) => eprintln!("Your last message has not been read yet."),
        None => eprintln!("No message yet."),
    }
    room.close().await;
    Ok(())
}

/// The message text from the argument, or stdin when absent or "-"; one trailing newline dropped.
fn message_text(arg: Option<String>) -> Result<String, Failure> {
    let mut text = match arg {
        Some(t) if t != "-" => t,
        _ => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("Type the message; end it with Ctrl-D on a line of its own.");
            }
            let mut buf = String::new();
            stdin
                .lock()
                .read_to_string(&mut buf)
                .map_err(|e| Failure::Plain(exit::USAGE, format!("cannot read stdin: {e}")))?;
            buf
        }
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(Failure::Plain(
            exit::USAGE,
            "the message is empty".to_owned(),
        ));
    }
    if text.len() > crypto::MAX_PLAINTEXT_BYTES {
        return Err(ClientError::TooLong {
            len: text.len(),
            max: crypto::MAX_PLAINTEXT_BYTES,
        }
        .into());
    }
    Ok(text)
}

fn not_your_turn(room: &Room) -> Failure {
    let state = if room.current().is_some_and(|m| m.read) {
        "it was read; wait for the reply"
    } else {
        "it is still unread, so you can still `stelgano edit` or `stelgano delete` it"
    };
    Failure::Plain(
        exit::NOT_YOUR_TURN,
        format!("not your turn: your last message has not been answered yet ({state})"),
    )
}

async fn send(relay: &RelayUrl, text: Option<String>) -> Result<(), Failure> {
    let text = Zeroizing::new(message_text(text)?);
    let identity = identity(false)?;
    let mut room = open_existing(relay, identity).await?;
    if !room.my_turn() {
        let failure = not_your_turn(&room);
        room.close().await;
        return Err(failure);
    }
    let result = room.send(&text).await;
    room.close().await;
    match result {
        Ok(_) => {
            eprintln!("Sent.");
            Ok(())
        }
        Err(ClientError::Server(b)) if b.reason == Reason::NotYourTurn => Err(Failure::Plain(
            exit::NOT_YOUR_TURN,
            "not your turn: your last message has not been answered yet".to_owned(),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Serialize)]
struct ReadJson<'a> {
    id: &'a str,
    text: &'a str,
    inserted_at: &'a str,
}

/// Prints the other party's message and, unless told not to, marks it read.
async fn deliver(mut room: Room, m: Message, args: &ReadArgs) -> Result<(), Failure> {
    let text = match &m.text {
        Ok(t) => t,
        Err(why) => {
            room.close().await;
            return Err(ClientError::Decrypt(why.0).into());
        }
    };
    if args.json {
        let json = ReadJson {
            id: &m.id,
            text,
            inserted_at: &m.inserted_at,
        };
        println!(
            "{}",
            serde_json::to_string(&json).map_err(|e| Failure::Plain(exit::ERROR, e.to_string()))?
        );
    } else {
        println!("{text}");
    }
    let receipt = if !args.no_receipt && !m.read {
        room.read_receipt(&m.id).await
    } else {
        Ok(())
    };
    room.close().await;
    Ok(receipt?)
}

async fn read(relay: &RelayUrl, args: ReadArgs) -> Result<(), Failure> {
    let identity = identity(false)?;
    let mut room = open_existing(relay, identity).await?;
    if let Some(m) = room.current().filter(|m| !m.mine).cloned() {
        return deliver(room, m, &args).await;
    }
    if !args.wait {
        let why = match room.current() {
            Some(m) if m.read => "the last message is yours, and it was read",
            Some(_) => "the last message is yours, not read yet",
            None => "the channel holds no message",
        };
        room.close().await;
        return Err(Failure::Plain(
            exit::NO_MESSAGE,
            format!("nothing to read: {why}"),
        ));
    }
    if room.info().awaiting_party {
        eprintln!("Waiting for the other party to pair and write...");
    } else {
        eprintln!("Waiting for the other party's message...");
    }
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    loop {
        let event = match deadline {
            Some(d) => match tokio::time::timeout_at(d, room.next_event()).await {
                Ok(e) => e,
                Err(_) => {
                    room.close().await;
                    return Err(Failure::Plain(
                        exit::TIMED_OUT,
                        format!(
                            "no message from the other party within {}",
                            human_duration(args.timeout.unwrap_or(0))
                        ),
                    ));
                }
            },
            None => room.next_event().await,
        };
        match event {
            Some(Event::Message(m)) if !m.mine => return deliver(room, m, &args).await,
            Some(Event::PartyPaired) => eprintln!("The other party has paired."),
            Some(Event::Expired) => {
                return Err(Failure::Plain(
                    exit::NO_CHANNEL,
                    "the channel was burned or has expired".to_owned(),
                ))
            }
            Some(Event::Closed { code, reason }) => {
                return Err(ClientError::Closed { code, reason }.into())
            }
            None => {
                return Err(ClientError::Closed {
                    code: 1006,
                    reason: String::new(),
                }
                .into())
            }
            Some(_) => {}
        }
    }
}

/// The id of this party's message while it can still be changed.
fn own_unread(room: &Room, verb: &str) -> Result<String, Failure> {
    match room.current() {
        Some(m) if m.mine && !m.read => Ok(m.id.clone()),
        Some(m) if m.mine => Err(Failure::Plain(
            exit::NOT_YOUR_TURN,
            format!("your message was already read; it can no longer be {verb}"),
        )),
        _ => Err(Failure::Plain(
            exit::NOT_YOUR_TURN,
            format!("there is no message of yours to be {verb}"),
        )),
    }
}

async fn edit(relay: &RelayUrl, text: Option<String>) -> Result<(), Failure> {
    let text = Zeroizing::new(message_text(text)?);
    let identity = identity(false)?;
    let mut room = open_existing(relay, identity).await?;
    let result = match own_unread(&room, "edited") {
        Ok(id) => room.edit(&id, &text).await.map_err(Failure::from),
        Err(f) => Err(f),
    };
    room.close().await;
    result?;
    eprintln!("Edited.");
    Ok(())
}

async fn delete(relay: &RelayUrl) -> Result<(), Failure> {
    let identity = identity(false)?;
    let mut room = open_existing(relay, identity).await?;
    let result = match own_unread(&room, "deleted") {
        Ok(id) => room.delete(&id).await.map_err(Failure::from),
        Err(f) => Err(f),
    };
    room.close().await;
    result?;
    eprintln!("Deleted.");
    Ok(())
}

#[derive(Serialize)]
struct StatusJson<'a> {
    awaiting_party: bool,
    ttl_expires_at: &'a str,
    my_turn: bool,
    message: Option<MessageState>,
    failed_attempts: u32,
}

#[derive(Serialize)]
struct MessageState {
    mine: bool,
    read: bool,
}

async fn status(relay: &RelayUrl) -> Result<(), Failure> {
    let identity = identity(false)?;
    let room = open_existing(relay, identity).await?;
    let info = room.info();
    let json = StatusJson {
        awaiting_party: info.awaiting_party,
        ttl_expires_at: &info.ttl_expires_at,
        my_turn: room.my_turn(),
        message: room.current().map(|m| MessageState {
            mine: m.mine,
            read: m.read,
        }),
        failed_attempts: info.failed_attempts,
    };
    let out = serde_json::to_string(&json).map_err(|e| Failure::Plain(exit::ERROR, e.to_string()));
    room.close().await;
    println!("{}", out?);
    Ok(())
}

async fn redeem(relay: &RelayUrl) -> Result<(), Failure> {
    let identity = identity(false)?;
    let token = secrets::token()?;
    let mut room = open_existing(relay, identity).await?;
    let result = room.redeem(&token).await;
    room.close().await;
    let until = result?;
    eprintln!("Extended: the channel now expires at {until}.");
    Ok(())
}

async fn burn(relay: &RelayUrl, yes: bool) -> Result<(), Failure> {
    if !yes {
        return Err(Failure::Plain(
            exit::USAGE,
            "burning destroys the channel and its message for both parties; add --yes to confirm"
                .to_owned(),
        ));
    }
    let identity = identity(false)?;
    let mut room = open_existing(relay, identity).await?;
    let result = room.expire().await;
    room.close().await;
    result?;
    eprintln!("Burned: the channel no longer exists, for either party.");
    Ok(())
}

#[derive(Serialize)]
struct DeriveJson<'a> {
    normalised_phone: &'a str,
    room_hash: &'a str,
    access_hash: &'a str,
    sender_hash: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    otp_normalised: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    otp_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aes_key_hex: Option<&'a str>,
}

/// Offline: prints the derivations for any input, exactly as the formulas define them.
async fn derive(code: Option<String>, show_key: bool) -> Result<(), Failure> {
    let phone = secrets::phone()?;
    let pin = secrets::pin(false)?;
    let identity = Identity::from_parts(&phone, &pin);
    drop(pin);
    let key_hex = if show_key {
        let key = finish_key(start_key(&identity)).await?;
        Some(key.to_hex())
    } else {
        None
    };
    let json = DeriveJson {
        normalised_phone: identity.normalised_phone(),
        room_hash: identity.room_hash(),
        access_hash: identity.access_hash(),
        sender_hash: identity.sender_hash(),
        otp_normalised: code.as_deref().map(crypto::normalise_otp),
        otp_hash: code.as_deref().map(crypto::otp_hash),
        aes_key_hex: key_hex.as_ref().map(|k| k.as_str()),
    };
    let out = Zeroizing::new(
        serde_json::to_string(&json).map_err(|e| Failure::Plain(exit::ERROR, e.to_string()))?,
    );
    println!("{}", out.as_str());
    Ok(())
}
