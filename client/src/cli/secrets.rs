//! Where the CLI gets the steg number, the PIN and pairing codes: environment variables for
//! scripts, otherwise the terminal (the PIN hidden). Never from flags, which land in shell history.

use std::io::{BufRead, BufReader, Write};

use stelgano_client::ClientError;
use zeroize::Zeroizing;

pub const PHONE_VAR: &str = "STELGANO_PHONE";
pub const PIN_VAR: &str = "STELGANO_PIN";

/// A variable's value; a value that is not UTF-8 is an error rather than silently ignored.
fn env(name: &str) -> Result<Option<Zeroizing<String>>, ClientError> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(v) => v
            .into_string()
            .map(|s| Some(Zeroizing::new(s)))
            .map_err(|_| ClientError::Input(format!("{name} is not valid UTF-8"))),
    }
}

fn no_terminal(what: &str, var: &str, e: std::io::Error) -> ClientError {
    ClientError::Input(format!(
        "cannot prompt for the {what} ({e}); set {var} when running without a terminal"
    ))
}

/// A visible line from the controlling terminal (not stdin, which may carry a message).
fn prompt_line(prompt: &str) -> std::io::Result<Zeroizing<String>> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let mut out = &tty;
    out.write_all(prompt.as_bytes())?;
    out.flush()?;
    let mut line = Zeroizing::new(String::new());
    BufReader::new(&tty).read_line(&mut line)?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    Ok(trimmed)
}

/// The steg number as typed.
pub fn phone() -> Result<Zeroizing<String>, ClientError> {
    if let Some(p) = env(PHONE_VAR)? {
        return Ok(p);
    }
    prompt_line("Steg number (international, e.g. +14155550123): ")
        .map_err(|e| no_terminal("steg number", PHONE_VAR, e))
}

/// The PIN exactly as typed (no trimming). `confirm` asks twice when prompting.
pub fn pin(confirm: bool) -> Result<Zeroizing<String>, ClientError> {
    if let Some(p) = env(PIN_VAR)? {
        return Ok(p);
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("PIN (hidden): ").map_err(|e| no_terminal("PIN", PIN_VAR, e))?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("PIN again: ")
                .map_err(|e| no_terminal("PIN", PIN_VAR, e))?,
        );
        if *first != *again {
            return Err(ClientError::Input("the two PINs differ".to_owned()));
        }
    }
    Ok(first)
}

/// A pairing code typed at the terminal.
pub fn pairing_code() -> Result<Zeroizing<String>, ClientError> {
    prompt_line(
        "This channel waits for its second party.\nPairing code you were given (XXXX-XXXX): ",
    )
    .map_err(|e| no_terminal("pairing code", "--code", e))
}

pub const TOKEN_VAR: &str = "STELGANO_TOKEN";

/// An extension token secret: from the environment, or typed hidden (it is a bearer secret).
pub fn token() -> Result<Zeroizing<String>, ClientError> {
    if let Some(t) = env(TOKEN_VAR)? {
        return Ok(t);
    }
    rpassword::prompt_password("Extension token (hidden): ")
        .map(Zeroizing::new)
        .map_err(|e| no_terminal("extension token", TOKEN_VAR, e))
}
