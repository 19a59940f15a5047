//! `stelgano-relay`: parses flags (each also read from `STELGANO_<FLAG>`), sets up logging, runs
//! the relay until SIGINT/SIGTERM, then shuts it down gracefully; or, with `tokens`, mints and
//! counts extension tokens; or, with `nodes`, plans and carries out the move of room records
//! when nodes are added to or removed from an nginx-fronted deployment (docs/SCALING.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use stelgano_relay::config::Settings;
use stelgano_relay::{Config, Relay};
use tracing_subscriber::EnvFilter;

/// The sTELgano relay: 1:1 dead-drop messaging. Holds at most one encrypted message per room, in
/// memory only; keeps room existence, seats, lockouts and TTLs in a small durable store.
///
/// Every setting can be given as a flag, as an environment variable named STELGANO_ plus the
/// flag in upper case with underscores (e.g. --join-floor-ms is STELGANO_JOIN_FLOOR_MS), or as a
/// key of a TOML file given with --config (join_floor_ms = 500). Flags win over the environment,
/// which wins over the file.
#[derive(Debug, Parser)]
#[command(name = "stelgano-relay", version, about, long_about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// A TOML file of settings (keys as the flags, with `_` for `-`); an unknown key is an error.
    #[arg(long, env = "STELGANO_CONFIG", value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// Print the effective settings as TOML (file, environment and flags applied) and exit.
    #[arg(long)]
    print_config: bool,

    #[command(flatten)]
    settings: Settings,

    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "stelgano_relay=debug".
    #[arg(long, env = "STELGANO_LOG", default_value = "info")]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Extension tokens: mint new ones, or count them by state. Works while the relay runs
    /// (through its admin socket in the data directory) and while it is stopped.
    Tokens {
        #[command(subcommand)]
        action: Tokens,
    },
    /// Several relays behind nginx's consistent hash: which room records change owner when the
    /// node list changes, and moving just those (docs/SCALING.md). Every action works on the
    /// store in --data-dir, so that node's relay must be stopped.
    Nodes {
        #[command(subcommand)]
        action: Nodes,
    },
}

#[derive(Debug, Subcommand)]
enum Nodes {
    /// Count this node's records: unplaced, staying, and moving (by destination). Changes
    /// nothing.
    Plan {
        /// This node, written exactly as in nginx's upstream block (e.g. 10.0.0.2:8080).
        #[arg(long = "self", value_name = "SERVER")]
        this: String,
        /// The current upstream servers, comma-separated, in the upstream block's order.
        #[arg(long, value_name = "LIST")]
        nodes: Option<String>,
        /// The new upstream servers, comma-separated, in the new block's order.
        #[arg(long, value_name = "LIST")]
        new_nodes: String,
    },
    /// Write one bundle per destination with this node's records that the new list gives to
    /// another node (sealed, as stored). The store is not changed.
    Export {
        #[arg(long = "self", value_name = "SERVER")]
        this: String,
        #[arg(long, value_name = "LIST")]
        new_nodes: String,
        /// An existing directory for the bundles (`to-<node>.move`).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Leave records without a ring position on this node instead of refusing.
        #[arg(long)]
        keep_unplaced: bool,
    },
    /// Store a bundle's records on this node (its new owner); prints the receipt for `drop`.
    Import {
        #[arg(long = "self", value_name = "SERVER")]
        this: String,
        #[arg(long, value_name = "LIST")]
        new_nodes: String,
        #[arg(long, value_name = "FILE")]
        bundle: PathBuf,
    },
    /// Remove a bundle's records from this node (the old owner) once they are imported.
    Drop {
        #[arg(long, value_name = "FILE")]
        bundle: PathBuf,
        /// What `import` printed for this bundle.
        #[arg(long, value_name = "HEX")]
        receipt: String,
    },
}

#[derive(Debug, Subcommand)]
enum Tokens {
    /// Mint tokens: prints each secret once on stdout, one per line, and nothing else there.
    /// Only their hashes are stored; hand each secret to one user.
    Mint {
        /// How many tokens to mint (1 to 10,000).
        #[arg(long)]
        count: u32,
        /// How many days each token can be redeemed for (1 to 3,650).
        #[arg(long)]
        days: u32,
    },
    /// Count tokens by state (unused, expired, redeemed, swept). Nothing else is kept.
    List,
}

impl Args {
    /// The file's settings, then the environment's and the flags' on top.
    fn settings(&self) -> Result<Settings, String> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Settings::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Settings::default(),
        };
        Ok(file.overlaid_with(&self.settings))
    }
}

/// The command line, with each setting's help ending in its default from `Config::default()`
/// (the only place defaults are written).
fn command() -> clap::Command {
    let defaults = Settings::from_config(&Config::default());
    let table = match toml::Value::try_from(&defaults) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::value::Table::new(),
    };
    let mut cmd = Args::command();
    for (key, value) in table {
        let shown = match value {
            toml::Value::String(s) => s,
            other => other.to_string(),
        };
        cmd = cmd.mut_arg(key.as_str(), |a| {
            let help = a.get_help().map(ToString::to_string).unwrap_or_default();
            a.help(format!("{help} [default: {shown}]"))
        });
    }
    cmd
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::from_arg_matches(&command().get_matches()) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stelgano-relay: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match settings.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stelgano-relay: invalid setting {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Tokens { action }) = &args.command {
        return tokens(action, &config.data_dir).await;
    }
    if let Some(Command::Nodes { action }) = &args.command {
        return match nodes(action, &config.data_dir).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stelgano-relay nodes: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.print_config {
        print!("{}", Settings::from_config(&config).to_toml());
        return ExitCode::SUCCESS;
    }
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish();
    // Set as the default by hand rather than with `.init()`, which would also install the `log`
    // bridge: sled logs keys and values (room, access, sender and pairing hashes) through `log`
    // at trace level. With no `log` logger installed those records go nowhere, whatever the
    // filter; only the relay's own `tracing` events, which carry no hash, are written.
    if let Err(e) = tracing::subscriber::set_global_default(subscriber) {
        eprintln!("stelgano-relay: cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }

    let data_dir = config.data_dir.clone();
    let relay = match Relay::start(config).await {
        Ok(relay) => relay,
        Err(e) => {
            eprintln!("stelgano-relay: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        "open http://{} in a browser; data in {}",
        relay.local_addr(),
        data_dir.display()
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    relay.shutdown().await;
    ExitCode::SUCCESS
}

/// `stelgano-relay tokens …`: secrets alone on stdout (so they can be piped), the rest on stderr.
async fn tokens(action: &Tokens, data_dir: &std::path::Path) -> ExitCode {
    use std::io::Write;
    match action {
        Tokens::Mint { count, days } => {
            match stelgano_relay::admin::mint(data_dir, *count, *days).await {
                Ok(secrets) => {
                    let mut out = std::io::stdout().lock();
                    for s in &secrets {
                        if writeln!(out, "{s}").is_err() {
                            return ExitCode::FAILURE;
                        }
                    }
                    eprintln!(
                        "minted {} token(s), redeemable for {days} day(s); the secrets above are the only copy",
                        secrets.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("stelgano-relay tokens mint: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Tokens::List => match stelgano_relay::admin::counts(data_dir).await {
            Ok(c) => {
                println!("unused\t{}", c.unused);
                println!("expired\t{}", c.expired);
                println!("redeemed\t{}", c.redeemed);
                println!("swept\t{}", c.swept);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("stelgano-relay tokens list: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `stelgano-relay nodes …`: counts as `key<TAB>value` lines on stdout; the receipt of an
/// import alone on its own `receipt` line.
async fn nodes(
    action: &Nodes,
    data_dir: &std::path::Path,
) -> Result<(), stelgano_relay::RelayError> {
    use stelgano_relay::nodes;
    use stelgano_relay::ring::Ring;
    let print_plan = |plan: &nodes::Plan| {
        println!("records\t{}", plan.records);
        println!("unplaced\t{}", plan.unplaced);
        println!("stay\t{}", plan.stay);
        println!("misplaced\t{}", plan.misplaced);
        for (to, n) in &plan.moving {
            println!("move\t{to}\t{n}");
        }
    };
    match action {
        Nodes::Plan {
            this,
            nodes: old,
            new_nodes,
        } => {
            let old = old.as_deref().map(Ring::parse).transpose()?;
            let new = Ring::parse(new_nodes)?;
            let plan = nodes::plan(data_dir, this, old.as_ref(), &new)?;
            print_plan(&plan);
        }
        Nodes::Export {
            this,
            new_nodes,
            out,
            keep_unplaced,
        } => {
            let new = Ring::parse(new_nodes)?;
            let (plan, paths) = nodes::export(data_dir, this, &new, out, *keep_unplaced)?;
            print_plan(&plan);
            for p in paths {
                println!("bundle\t{}", p.display());
            }
        }
        Nodes::Import {
            this,
            new_nodes,
            bundle,
        } => {
            let new = Ring::parse(new_nodes)?;
            let done = nodes::import(data_dir, this, &new, bundle).await?;
            println!("imported\t{}", done.new);
            println!("already\t{}", done.already);
            println!("receipt\t{}", done.receipt);
        }
        Nodes::Drop { bundle, receipt } => {
            let done = nodes::drop_moved(data_dir, bundle, receipt).await?;
            println!("removed\t{}", done.removed);
            println!("absent\t{}", done.absent);
        }
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
