//! `nines net`: the robot's zenoh network as ROS 2 sees it, for a machine
//! with no ROS install: `list` reads the rmw_zenoh liveliness tokens (what
//! `ros2 node list` and `ros2 topic list -v` show), `echo` prints the
//! messages on a topic with their attachments (what `ros2 topic echo` shows).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, Subcommand};
use nines_datasets::cdr;
use nines_datasets::msg::{
    AckermannDriveStamped, CameraInfo, CompressedImage, DiagnosticArray, Empty, Event, Image, ModelOutput,
    ObjectArray, Odometry, PointCloud2, RosMessage, TfMessage, type_hash,
};
use nines_onboard::config::{NetworkConfig, TlsConfig};
use nines_onboard::rmw::{Attachment, EntityKind, Token, ros_type_name};
use nines_onboard::zenoh_io::Node;
use serde::Serialize;
use serde_json::{Value, json};

/// `nines net ...`.
#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// List the nodes and topics on the network, with types, publishers,
    /// subscriptions and their QoS (like `ros2 node list` + `ros2 topic list -v`).
    List(ListArgs),
    /// Print the messages on a topic as JSON lines, one per sample, with
    /// its attachment (like `ros2 topic echo`); images and point clouds
    /// without their bytes.
    Echo(EchoArgs),
}

/// How this tool joins the network.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Zenoh endpoints to connect to (a router, or a node that listens).
    #[arg(long, default_values_t = ["tcp/localhost:7447".to_string()])]
    pub connect: Vec<String>,
    /// ROS domain.
    #[arg(long, default_value_t = 0)]
    pub domain_id: u32,
    /// Fleet certificates from `nines certs` (mutual TLS on tls/ endpoints):
    /// uses DIR/ca.pem, DIR/<name>.pem and DIR/<name>.key.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// This tool's name in the fleet certificates.
    #[arg(long, default_value = "tools")]
    pub cert_name: String,
}

impl JoinArgs {
    fn open(&self) -> anyhow::Result<Arc<Node>> {
        let net = NetworkConfig {
            connect: self.connect.clone(),
            domain_id: self.domain_id,
            node: "nines_net".into(),
            tls: self.certs.as_ref().map(|d| TlsConfig::in_folder(d, &self.cert_name)),
            ..NetworkConfig::default()
        };
        Ok(Node::open(&net, std::path::Path::new("."))?)
    }
}

/// `nines net list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub join: JoinArgs,
    /// Seconds to gather tokens for (the graph arrives over the first moments).
    #[arg(long, default_value_t = 1.0)]
    pub wait: f64,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `nines net echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    /// The topic, e.g. /control/command.
    pub topic: String,
    #[command(flatten)]
    pub join: JoinArgs,
    /// Stop after this many messages (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    pub count: usize,
    /// Give up after this many seconds, with an error if nothing came (0: never).
    #[arg(long, default_value_t = 0.0)]
    pub timeout: f64,
}

/// Runs `nines net ...`.
pub fn run(cmd: &NetCommand) -> anyhow::Result<()> {
    match cmd {
        NetCommand::List(args) => list(args),
        NetCommand::Echo(args) => echo(args),
    }
}

/// A publisher or subscription as listed.
#[derive(Debug, Serialize)]
struct Endpoint {
    node: String,
    qos: Option<String>,
}

/// A topic as listed.
#[derive(Debug, Default, Serialize)]
struct Topic {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    type_hash: String,
    /// Whether the hash is the one nines computes for the type (false: a
    /// different definition, or a type nines does not know).
    matches_nines: bool,
    publishers: Vec<Endpoint>,
    subscriptions: Vec<Endpoint>,
}

/// The ROS graph from a set of liveliness keys: nodes, and topics by
/// (name, type, hash). Services are left out.
fn graph(keys: &[String], own_zid: &str) -> (Vec<String>, Vec<Topic>) {
    let mut nodes = std::collections::BTreeSet::new();
    let mut topics: BTreeMap<(String, String, String), Topic> = BTreeMap::new();
    for token in keys.iter().filter_map(|k| Token::parse(k)).filter(|t| t.zid != own_zid) {
        let node = token.node_name();
        let Some(topic) = &token.topic else {
            nodes.insert(node);
            continue;
        };
        if !matches!(token.kind, EntityKind::Publisher | EntityKind::Subscription) {
            continue;
        }
        let key = (topic.name.clone(), topic.type_name.clone(), topic.type_hash.clone());
        let entry = topics.entry(key).or_insert_with(|| Topic {
            name: topic.name.clone(),
            type_name: topic.type_name.clone(),
            type_hash: topic.type_hash.clone(),
            matches_nines: type_hash(&topic.type_name).is_ok_and(|h| h == topic.type_hash),
            ..Topic::default()
        });
        let endpoint = Endpoint { node, qos: topic.qos.map(|q| q.to_string()) };
        if token.kind == EntityKind::Publisher {
            entry.publishers.push(endpoint);
        } else {
            entry.subscriptions.push(endpoint);
        }
    }
    (nodes.into_iter().collect(), topics.into_values().collect())
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    if !(args.wait.is_finite() && args.wait > 0.0) {
        bail!("--wait must be a positive number of seconds, not {}", args.wait);
    }
    let node = args.join.open()?;
    let watch = node.watch_graph()?;
    std::thread::sleep(Duration::from_secs_f64(args.wait));
    let keys = watch.tokens();
    let (nodes, topics) = graph(&keys, &node.session().zid().to_string());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "nodes": nodes, "topics": topics }))?);
        return Ok(());
    }
    if nodes.is_empty() && topics.is_empty() {
        eprintln!(
            "no ROS 2 node on domain {} via {:?} (is a router or a node listening there?)",
            node.domain(),
            args.join.connect
        );
        return Ok(());
    }
    println!("nodes ({}):", nodes.len());
    for n in &nodes {
        println!("  {n}");
    }
    println!("topics ({}):", topics.len());
    for t in &topics {
        let mark = if t.matches_nines { "" } else { "  [type hash differs from nines' definition]" };
        println!("  {} [{}]{mark}", t.name, t.type_name);
        for (role, list) in [("publisher", &t.publishers), ("subscription", &t.subscriptions)] {
            for e in list {
                println!("    {role:<12} {} ({})", e.node, e.qos.as_deref().unwrap_or("QoS unreadable"));
            }
        }
    }
    Ok(())
}

/// A message of a type nines knows as JSON; images and point clouds carry
/// the size of their bytes instead of the bytes.
fn message_json(type_name: &str, payload: &[u8]) -> anyhow::Result<Value> {
    fn as_json<T: RosMessage + Serialize>(payload: &[u8]) -> anyhow::Result<Value> {
        Ok(serde_json::to_value(cdr::decode::<T>(payload)?)?)
    }
    /// The message with its `data` bytes taken out (before they would
    /// become one JSON value each) and their count put in their place.
    fn sized<T: RosMessage + Serialize>(
        payload: &[u8],
        data: fn(&mut T) -> &mut Vec<u8>,
    ) -> anyhow::Result<Value> {
        let mut message = cdr::decode::<T>(payload)?;
        let bytes = std::mem::take(data(&mut message)).len();
        let mut value = serde_json::to_value(message)?;
        value["data"] = json!({ "bytes": bytes });
        Ok(value)
    }
    Ok(match type_name {
        AckermannDriveStamped::TYPE_NAME => as_json::<AckermannDriveStamped>(payload)?,
        DiagnosticArray::TYPE_NAME => as_json::<DiagnosticArray>(payload)?,
        Event::TYPE_NAME => as_json::<Event>(payload)?,
        ModelOutput::TYPE_NAME => as_json::<ModelOutput>(payload)?,
        Odometry::TYPE_NAME => as_json::<Odometry>(payload)?,
        TfMessage::TYPE_NAME => as_json::<TfMessage>(payload)?,
        ObjectArray::TYPE_NAME => as_json::<ObjectArray>(payload)?,
        CameraInfo::TYPE_NAME => as_json::<CameraInfo>(payload)?,
        Empty::TYPE_NAME => as_json::<Empty>(payload)?,
        CompressedImage::TYPE_NAME => sized::<CompressedImage>(payload, |m| &mut m.data)?,
        Image::TYPE_NAME => sized::<Image>(payload, |m| &mut m.data)?,
        PointCloud2::TYPE_NAME => sized::<PointCloud2>(payload, |m| &mut m.data)?,
        other => bail!("nines has no definition of {other}"),
    })
}

/// One sample as a JSON line: its type, attachment and message (or why
/// the message could not be read).
fn sample_json(key: &str, payload: &[u8], attachment: Option<&[u8]>) -> Value {
    let mut out = json!({ "key": key, "bytes": payload.len() });
    let chunks: Vec<&str> = key.rsplitn(3, '/').collect();
    let (hash, dds) = (chunks.first().copied().unwrap_or(""), chunks.get(1).copied().unwrap_or(""));
    let type_name = ros_type_name(dds);
    out["type"] = json!(type_name);
    match attachment.and_then(Attachment::parse) {
        Some(a) => {
            out["sequence_number"] = json!(a.sequence_number);
            out["source_timestamp_ns"] = json!(a.source_timestamp_ns);
            out["gid"] = json!(nines_datasets::contract::short_hex(&a.gid));
        }
        None => out["attachment"] = json!("missing or not rmw_zenoh's (ROS 2 nodes drop such samples)"),
    }
    let Some(type_name) = type_name else {
        out["error"] = json!("not an rmw_zenoh data key");
        return out;
    };
    match type_hash(&type_name) {
        Ok(ours) if ours != hash => {
            out["error"] = json!(format!("type hash {hash} differs from nines' definition ({ours})"));
        }
        _ => match message_json(&type_name, payload) {
            Ok(m) => out["message"] = m,
            Err(e) => out["error"] = json!(e.to_string()),
        },
    }
    out
}

/// A sample as it came: key, payload, attachment.
type Heard = (String, Vec<u8>, Option<Vec<u8>>);

fn echo(args: &EchoArgs) -> anyhow::Result<()> {
    if !(args.timeout.is_finite() && args.timeout >= 0.0) {
        bail!("--timeout must be a number of seconds (0 for none), not {}", args.timeout);
    }
    let topic = args.topic.trim_matches('/');
    if topic.is_empty() || topic.split('/').any(|c| c.is_empty() || c.contains(['*', '$', '#', '?'])) {
        bail!("`{}` is not a topic name; give one like /control/command", args.topic);
    }
    let node = args.join.open()?;
    // Any type on the topic: <domain>/<topic>/<dds type>/<hash>. Samples are
    // decoded here, not on zenoh's thread; when printing falls behind, the
    // newest are dropped and counted.
    let key = format!("{}/{topic}/*/*", node.domain());
    let (tx, rx) = mpsc::sync_channel::<Heard>(64);
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&dropped);
    let _subscriber = zenoh::Wait::wait(node.session().declare_subscriber(key.as_str()).callback(
        move |s: zenoh::sample::Sample| {
            let heard = (
                s.key_expr().to_string(),
                s.payload().to_bytes().into_owned(),
                s.attachment().map(|a| a.to_bytes().into_owned()),
            );
            if tx.try_send(heard).is_err() {
                d.fetch_add(1, Ordering::Relaxed);
            }
        },
    ))
    .map_err(|e| anyhow::anyhow!("subscribing to {key}: {e}"))?;
    let deadline = (args.timeout > 0.0).then(|| Instant::now() + Duration::from_secs_f64(args.timeout));
    let mut out = std::io::stdout().lock();
    let (mut printed, mut reported) = (0, 0);
    while args.count == 0 || printed < args.count {
        let wait = deadline.map_or(Duration::from_hours(1), |d| d.saturating_duration_since(Instant::now()));
        match rx.recv_timeout(wait) {
            Ok((key, payload, attachment)) => {
                let line = sample_json(&key, &payload, attachment.as_deref());
                match writeln!(out, "{line}") {
                    // The reader went away (`| head`): done.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    r => r?,
                }
                printed += 1;
                let lost = dropped.load(Ordering::Relaxed);
                if lost > reported {
                    eprintln!("{lost} sample(s) dropped so far: printing could not keep up");
                    reported = lost;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if deadline.is_some_and(|d| Instant::now() >= d) => {
                if printed == 0 {
                    bail!("nothing on {} within {} s (domain {})", args.topic, args.timeout, node.domain());
                }
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_groups_tokens_by_topic_and_leaves_out_our_own() {
        let keys: Vec<String> = [
            "@ros2_lv/0/aa/0/0/NN/%/%/nines_onboard",
            "@ros2_lv/0/aa/0/1/MP/%/%/nines_onboard/%control%command/ackermann_msgs::msg::dds_::AckermannDriveStamped_/RIHS01_48ca7612a08d3bb72744fd98b71b7cf2ea24c6ad50fa4e1aa0bbad963c90d8cf/::,10:,:,:,,",
            "@ros2_lv/0/bb/0/3/MS/%/%/vehicle/%control%command/ackermann_msgs::msg::dds_::AckermannDriveStamped_/RIHS01_48ca7612a08d3bb72744fd98b71b7cf2ea24c6ad50fa4e1aa0bbad963c90d8cf/2::,5:,:,:,,",
            "@ros2_lv/0/bb/0/4/MP/%/%/vehicle/%x/other_msgs::msg::dds_::Thing_/RIHS01_00/::,10:,:,:,,",
            "@ros2_lv/0/me/0/0/NN/%/%/nines_net",
            "not a token",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let (nodes, topics) = graph(&keys, "me");
        assert_eq!(nodes, ["/nines_onboard"]);
        assert_eq!(topics.len(), 2);
        let command = &topics[0];
        assert_eq!((command.name.as_str(), command.matches_nines), ("/control/command", true));
        assert_eq!(command.publishers[0].node, "/nines_onboard");
        assert_eq!(command.subscriptions[0].qos.as_deref(), Some("best_effort, volatile, keep_last 5"));
        assert!(!topics[1].matches_nines, "a type nines does not know");
    }

    #[test]
    fn samples_read_as_json_or_say_why_not() {
        let msg = AckermannDriveStamped::default();
        let payload = cdr::encode(&msg).unwrap();
        let key =
            nines_onboard::rmw::topic_key(0, "/control/command", AckermannDriveStamped::TYPE_NAME).unwrap();
        let a = Attachment { sequence_number: 7, source_timestamp_ns: 1, gid: [0xab; 16] }.to_bytes();
        let line = sample_json(&key, &payload, Some(&a));
        assert_eq!(line["sequence_number"], 7);
        assert_eq!(line["gid"], "abababababababab");
        assert_eq!(serde_json::from_value::<AckermannDriveStamped>(line["message"].clone()).unwrap(), msg);
        let wrong_hash = key.replace("RIHS01_48", "RIHS01_00");
        assert!(sample_json(&wrong_hash, &payload, None)["error"].as_str().unwrap().contains("differs"));
        assert!(sample_json(&key, &payload[..6], Some(&a))["error"].is_string(), "a cut payload");
        let image =
            CompressedImage { format: "jpeg".into(), data: vec![1; 1000], ..CompressedImage::default() };
        let key = nines_onboard::rmw::topic_key(0, "/camera", CompressedImage::TYPE_NAME).unwrap();
        let line = sample_json(&key, &cdr::encode(&image).unwrap(), None);
        assert_eq!(line["message"]["data"]["bytes"], 1000);
        assert!(line["attachment"].is_string());
    }
}
