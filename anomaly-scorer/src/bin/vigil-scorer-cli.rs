//! `vigil-scorer-cli`: queries a running anomaly scorer over gRPC, and
//! evaluates the scorer on a syscall-trace set of one's own.
//!
//! ```text
//! vigil-scorer-cli get --container <id>
//! vigil-scorer-cli get --namespace shop --pod web-1
//! vigil-scorer-cli top --limit 5
//! vigil-scorer-cli stream --min-score 0.6
//! vigil-scorer-cli evaluate DIR [--seeds 5] [--min-score 0.6]
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use vigil_anomaly_scorer::evaluate::{TraceSet, evaluate};
use vigil_anomaly_scorer::scorer::DEFAULT_MIN_SCORE;
use vigil_proto::v1::anomaly_scorer_client::AnomalyScorerClient;
use vigil_proto::v1::{AnomalyScore, GetScoreRequest, StreamScoresRequest, TopAnomalousRequest};

#[derive(Parser)]
#[command(name = "vigil-scorer-cli", version)]
struct Args {
    /// The scorer's gRPC endpoint.
    #[arg(
        long,
        env = "VIGIL_SCORER_ADDR",
        default_value = "http://127.0.0.1:9464"
    )]
    addr: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Query(Query),
    /// Scores a syscall-trace set in ADFA-LD's layout (no scorer needed):
    /// ROC AUC, detection at 1/5/10 % false positives, per attack family,
    /// beside STIDE.
    Evaluate {
        /// Folder holding Training_Data_Master, Validation_Data_Master and
        /// Attack_Data_Master/<Family>_<n>.
        dir: PathBuf,
        /// Isolation forests fitted (seeds 0..N); figures are their mean.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: u64,
        /// The floor of the score threshold, as `finding_min_score` in the
        /// scorer's configuration.
        #[arg(long, default_value_t = DEFAULT_MIN_SCORE)]
        min_score: f64,
    },
}

/// Questions to a running scorer over gRPC.
#[derive(Subcommand)]
enum Query {
    /// Latest score of a container, or of a pod (its highest container score).
    Get {
        #[arg(long, default_value = "")]
        container: String,
        #[arg(long, default_value = "")]
        namespace: String,
        #[arg(long, default_value = "")]
        pod: String,
    },
    /// The workloads with the highest latest score.
    Top {
        #[arg(long, default_value_t = 10)]
        limit: u32,
    },
    /// Every score as it is computed, until interrupted.
    Stream {
        #[arg(long, default_value_t = 0.0)]
        min_score: f64,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Query(query) => ask(&args.addr, query).await,
        Command::Evaluate {
            dir,
            seeds,
            min_score,
        } => evaluate_dir(&dir, seeds, min_score),
    }
}

async fn ask(addr: &str, query: Query) -> Result<()> {
    let mut client = AnomalyScorerClient::connect(addr.to_owned())
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    match query {
        Query::Get {
            container,
            namespace,
            pod,
        } => {
            let request = GetScoreRequest {
                container_id: container,
                namespace,
                pod,
            };
            let score = client.get_score(request).await.context("GetScore")?;
            print_score(score.get_ref(), true);
        }
        Query::Top { limit } => {
            let reply = client
                .top_anomalous(TopAnomalousRequest { limit })
                .await
                .context("TopAnomalous")?;
            for score in &reply.get_ref().scores {
                print_score(score, false);
            }
        }
        Query::Stream { min_score } => {
            let mut stream = client
                .stream_scores(StreamScoresRequest { min_score })
                .await
                .context("StreamScores")?
                .into_inner();
            while let Some(score) = stream.message().await.context("StreamScores")? {
                print_score(&score, false);
            }
        }
    }
    Ok(())
}

fn evaluate_dir(dir: &std::path::Path, seeds: u64, min_score: f64) -> Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&min_score),
        "--min-score {min_score} is outside 0..=1"
    );
    let set = TraceSet::load(dir)?;
    let seeds: Vec<u64> = (0..seeds).collect();
    let evaluation = evaluate(&set, &seeds, min_score)?;
    print!("{}", evaluation.render(&set));
    Ok(())
}

fn print_score(score: &AnomalyScore, explain: bool) {
    let state = if score.learning {
        "learning"
    } else {
        "scoring"
    };
    println!(
        "{:.4}  novelty {:.4}  {state}  {}/{}  container {}  workload {}  window_end_ns {}",
        score.score,
        score.novelty,
        score.namespace,
        score.pod,
        score.container_id,
        score.workload,
        score.window_end_ns
    );
    if explain {
        for c in &score.explanation {
            println!(
                "    {:<32} value {:.4}  weight {:.2}",
                c.feature, c.value, c.weight
            );
        }
    }
}
