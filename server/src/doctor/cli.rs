//! The command line: `server doctor [--token <access token> | --token -]`,
//! the token read from standard input, and exit status 2 with one line on
//! standard error for a bad setting or bad arguments, as the server does.
//!
//! A token is never echoed, not even in an error about the arguments: a
//! misplaced argument may be a pasted token.

use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;

use crate::bearer::HttpOptions;
use crate::config::Config;

use super::checkup::{run, Options};
use super::report::printable;

const USAGE: &str =
    "usage: server doctor [--token <access token> | --token -]  (- reads the token from standard input)";

/// Exit status for a bad setting or bad arguments.
pub const EXIT_BAD_CONFIG: u8 = 2;
/// Most bytes read from standard input for `--token -`.
const MAX_TOKEN_INPUT: u64 = 64 * 1024;

/// `server doctor [args]`: reads the configuration the server reads, runs
/// the checks, prints them on standard output.
pub async fn main(args: &[String]) -> ExitCode {
    let token = match parse_args(args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Check { token }) => token,
        Err(message) => return bad_config(&format!("{message}; {USAGE}")),
    };
    let token = match token {
        None => None,
        Some(TokenArg::Value(token)) => Some(token),
        Some(TokenArg::Stdin) => match read_token(std::io::stdin().lock()) {
            Ok(token) => Some(token),
            Err(message) => return bad_config(&message),
        },
    };
    // The one Leptos setting the configuration depends on, read as Leptos
    // reads it (its get_configuration also wants the build's output name,
    // which a doctor run has no use for and would complain about).
    let site_addr = match std::env::var("LEPTOS_SITE_ADDR") {
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 3000)),
        Ok(value) => match value.parse() {
            Ok(addr) => addr,
            Err(_) => {
                return bad_config(&format!(
                    "LEPTOS_SITE_ADDR is not valid: {:?} is not an address such as 127.0.0.1:3000",
                    printable(&value)
                ))
            }
        },
    };
    let config = match Config::from_env(site_addr) {
        Ok(config) => config,
        Err(err) => return bad_config(&err.to_string()),
    };
    let options = Options {
        token,
        http: HttpOptions::default(),
    };
    match run(&config, &options, &mut std::io::stdout()).await {
        Ok(report) => ExitCode::from(report.exit_code()),
        Err(line) => bad_config(&line),
    }
}

fn bad_config(line: &str) -> ExitCode {
    eprintln!("error: {line}");
    ExitCode::from(EXIT_BAD_CONFIG)
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Check { token: Option<TokenArg> },
    Help,
}

#[derive(Debug, PartialEq, Eq)]
enum TokenArg {
    Value(String),
    Stdin,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut token = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--token" => args.next().ok_or("--token needs a value")?.clone(),
            other => match other.strip_prefix("--token=") {
                Some(value) => value.to_owned(),
                // Not echoed: it may be a token pasted in the wrong place.
                None => return Err("unknown argument".into()),
            },
        };
        if token.is_some() {
            return Err("--token is given twice".into());
        }
        token = Some(if value == "-" {
            TokenArg::Stdin
        } else {
            TokenArg::Value(clean_token(&value).ok_or("--token is empty")?)
        });
    }
    Ok(Command::Check { token })
}

/// The token on `input`, without surrounding white space or a `Bearer `
/// prefix.
fn read_token(input: impl Read) -> Result<String, String> {
    let mut text = String::new();
    input
        .take(MAX_TOKEN_INPUT)
        .read_to_string(&mut text)
        .map_err(|err| format!("cannot read the token from standard input: {err}"))?;
    clean_token(&text).ok_or_else(|| "--token -: standard input holds no token".into())
}

fn clean_token(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .unwrap_or(text)
        .trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let args = |a: &[&str]| parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(args(&[]), Ok(Command::Check { token: None }));
        assert_eq!(
            args(&["--token", "-"]),
            Ok(Command::Check {
                token: Some(TokenArg::Stdin)
            })
        );
        assert_eq!(
            args(&["--token=Bearer abc"]),
            Ok(Command::Check {
                token: Some(TokenArg::Value("abc".into()))
            })
        );
        assert_eq!(args(&["--help"]), Ok(Command::Help));
        assert!(args(&["--token"]).is_err());
        assert!(args(&["--token", " "]).is_err());
        assert!(args(&["--token", "a", "--token", "b"]).is_err());
        // An unknown argument is not echoed: it may be a misplaced token.
        let err = args(&["eyJsecret"]).unwrap_err();
        assert!(!err.contains("eyJsecret"), "{err}");
    }

    #[test]
    fn reads_the_token_from_input() {
        assert_eq!(read_token(&b"  abc.def.ghi\n"[..]).unwrap(), "abc.def.ghi");
        assert_eq!(read_token(&b"Bearer abc\n"[..]).unwrap(), "abc");
        assert!(read_token(&b"\n"[..]).is_err());
    }
}
