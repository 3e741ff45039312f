//! `vigil-scorer-cli`: queries a running anomaly scorer over gRPC.
//!
//! ```text
//! vigil-scorer-cli get --container <id>
//! vigil-scorer-cli get --namespace shop --pod web-1
//! vigil-scorer-cli top --limit 5
//! vigil-scorer-cli stream --min-score 0.6
//! ```

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
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
    let mut client = AnomalyScorerClient::connect(args.addr.clone())
        .await
        .with_context(|| format!("connecting to {}", args.addr))?;
    match args.command {
        Command::Get {
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
        Command::Top { limit } => {
            let reply = client
                .top_anomalous(TopAnomalousRequest { limit })
                .await
                .context("TopAnomalous")?;
            for score in &reply.get_ref().scores {
                print_score(score, false);
            }
        }
        Command::Stream { min_score } => {
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
