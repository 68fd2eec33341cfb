//! `mongo-sim`: a MongoDB replica-set member for tests. Takes mongod's
//! options (`mongo-sim --help`).

use std::process::ExitCode;

use mongo_sim::options::{Invocation, parse_args};

const HELP: &str = "mongo-sim: a MongoDB replica-set member for tests, speaking the wire protocol.

Takes mongod's options (and a YAML config file with --config):
  --port N                 --bind_ip a,b | --bind_ip_all
  --dbpath DIR             --replSet NAME
  --auth | --noauth        --clusterAuthMode x509
  --tlsMode disabled|allowTLS|preferTLS|requireTLS   (or --sslMode …SSL)
  --tlsCertificateKeyFile F (--sslPEMKeyFile)   --tlsCAFile F (--sslCAFile)
  --tlsClusterFile F       --tlsAllowConnectionsWithoutCertificates
  --logpath F --logappend  --setParameter enableLocalhostAuthBypass=0|1
  --config F | -f F        --version
Sim-only:
  --simServerVersion 3.6|4.4|5.0|6.0|7.0|8.0   the version reported (default 7.0)
  --simFeatureCompatibilityVersion 3.4|3.6     with 3.6: FCV 3.4 data (no collection UUIDs, no sessions)

Exit codes as mongod: 0 clean shutdown, 2 bad options, 48 address in use,
100 data directory unusable.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(Invocation::Run(options)) => *options,
        Ok(Invocation::Help) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!(
                "db version v{} (mongo-sim {})",
                mongo_sim::version::Version::default().string(),
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(mongo_sim::server::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // mongod logs the reason and exits with a specific code.
            eprintln!("{}", e.message);
            println!("{{\"s\":\"F\",\"c\":\"CONTROL\",\"msg\":{:?}}}", e.message);
            ExitCode::from(u8::try_from(e.code).unwrap_or(1))
        }
    }
}
