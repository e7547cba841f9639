//! The `sipgw-bench` command: parses the command line, stops cleanly on Ctrl-C or SIGTERM, and
//! prints the report (a table, or JSON with `--json`). Exit code 1 on an error, with a message
//! naming what failed.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use sipgw_bench::cli::{self, Cli};

fn main() {
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("sipgw-bench: cannot handle signal {sig}: {e}");
        }
    }
    match cli::run(&cli, &stop) {
        Ok(report) => {
            if cli.json {
                let text = if cli.pretty {
                    serde_json::to_string_pretty(&report)
                } else {
                    serde_json::to_string(&report)
                };
                match text {
                    Ok(t) => println!("{t}"),
                    Err(e) => {
                        eprintln!("sipgw-bench: cannot write the report as JSON: {e}");
                        std::process::exit(1);
                    }
                }
            } else {
                print!("{}", report.render());
            }
        }
        Err(e) => {
            eprintln!("sipgw-bench: {e:#}");
            std::process::exit(1);
        }
    }
}
