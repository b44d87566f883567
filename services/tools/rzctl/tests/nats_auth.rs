//! NATS authorisation against a real nats-server: `rzctl nats config` writes the region's account
//! and users, the test starts its own nats-server (a free port, its own store) with that config,
//! and checks what a provider's and a service's credentials may and may not do. async-nats reports
//! a permission violation asynchronously, as a server error event: the tests collect those events
//! and also check the effect (nothing received, nothing stored, nothing delivered).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rz_eventing::Namespace;
use rz_eventing::auth::{self, NatsAuth};
use rz_eventing::nats::{self, jetstream};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

const A: &str = "11111111";
const B: &str = "22222222";
const C: &str = "33333333";
const NATS_SERVER_CANDIDATES: [&str; 3] = [
    "nats-server",
    "/usr/sbin/nats-server",
    "/usr/local/bin/nats-server",
];

fn nats_server_bin() -> String {
    for bin in NATS_SERVER_CANDIDATES {
        if Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok()
        {
            return bin.to_owned();
        }
    }
    panic!("nats-server not found (PATH, /usr/sbin, /usr/local/bin)")
}

/// A nats-server of the test's own, killed on drop.
struct Server {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Server {
    /// Starts nats-server with a main config that holds the listener and JetStream and includes
    /// the generated auth config `auth` (a reload re-reads both; JetStream given on the command
    /// line instead would be switched off by a reload).
    fn start(dir: &Path, auth: &Path) -> Self {
        Self::start_with(dir, auth, "")
    }

    /// Like [`Server::start`], with `extra` added to the main config (a `tls {}` block).
    fn start_with(dir: &Path, auth: &Path, extra: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let main = dir.join("nats.conf");
        std::fs::write(
            &main,
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\n{extra}\ninclude \"{}\"\n",
                dir.join("js").display(),
                auth.file_name().unwrap().to_str().unwrap()
            ),
        )
        .unwrap();
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&main)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("nats.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            dir: dir.to_owned(),
        }
    }

    /// Re-reads the config without a restart.
    fn reload(&self) {
        let status = Command::new(nats_server_bin())
            .arg("--signal")
            .arg(format!("reload={}", self.child.id()))
            .status()
            .unwrap();
        assert!(status.success(), "nats-server --signal reload failed");
        // The reload is applied by the server asynchronously.
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rz-nats-auth-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rzctl(args: &[&str], nats_url: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rzctl"));
    cmd.args(args).env("RZ_NAMESPACE", "rz");
    if let Some(url) = nats_url {
        cmd.env("NATS_URL", url);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "rzctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rzctl nats config` for these providers.
fn write_config(dir: &Path, providers: &[&str]) -> PathBuf {
    let conf = dir.join("auth.conf");
    let pki = dir.join("pki");
    let list = providers.join(",");
    let out = rzctl(
        &[
            "nats",
            "config",
            "--pki",
            pki.to_str().unwrap(),
            "--out",
            conf.to_str().unwrap(),
            "--providers",
            &list,
        ],
        None,
    );
    assert!(
        out.contains(&format!("{} providers", providers.len())),
        "{out}"
    );
    conf
}

fn provision(server: &Server, providers: &[&str]) {
    let pki = server.dir.join("pki");
    rzctl(
        &[
            "nats",
            "provision",
            "--pki",
            pki.to_str().unwrap(),
            "--providers",
            &providers.join(","),
        ],
        Some(&server.url),
    );
}

fn ns() -> Namespace {
    Namespace::new("rz").unwrap()
}

fn user_auth(dir: &Path, user: &str) -> NatsAuth {
    NatsAuth::nkey(
        dir.join("pki").join(user).join("nats.nk"),
        auth::inbox_prefix(&ns(), user),
    )
}

/// A connection as `user` (a PKI folder name), its JetStream context (1 s request timeout) and
/// the server errors it is told about.
async fn connect_as(
    server: &Server,
    user: &str,
) -> (
    nats::Client,
    jetstream::Context,
    mpsc::UnboundedReceiver<String>,
) {
    connect_with_auth(server, &user_auth(&server.dir, user))
        .await
        .unwrap_or_else(|e| panic!("{user}: {e}"))
}

async fn connect_with_auth(
    server: &Server,
    creds: &NatsAuth,
) -> Result<
    (
        nats::Client,
        jetstream::Context,
        mpsc::UnboundedReceiver<String>,
    ),
    String,
> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = auth::connect_options("test", creds)
        .await
        .map_err(|e| e.to_string())?
        .request_timeout(Some(Duration::from_secs(1)))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(&server.url)
        .await
        .map_err(|e| e.to_string())?;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(client.clone());
    Ok((client, js, rx))
}

/// Waits up to 2 s for a server error containing `needle`.
async fn violation(errors: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, errors.recv()).await {
            Ok(Some(e)) if e.contains(needle) => return e,
            Ok(Some(_)) => continue,
            _ => panic!("no server error containing `{needle}`"),
        }
    }
}

/// As the assignment service: ensures the assignment and dead-letter streams and publishes
/// `count` events addressed to `agb` (or to no provider), with their ids as `Nats-Msg-Id`.
async fn publish_events(js: &jetstream::Context, agb: Option<&str>, count: usize) {
    let settings = rz_eventing::StreamSettings::default();
    rz_eventing::ensure_stream(js, &ns(), "assignment", &settings)
        .await
        .unwrap();
    rz_eventing::dlq::ensure_stream_with(js, &ns(), &settings)
        .await
        .unwrap();
    let event = if agb.is_some() { "issued" } else { "lifecycle" };
    for _ in 0..count {
        let subject = ns().subject("assignment", Some("0222"), agb, event);
        let mut headers = nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", uuid::Uuid::now_v7().to_string().as_str());
        js.publish_with_headers(subject, headers, "payload".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

async fn stream_messages(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream("RZ_ASSIGNMENT").await.unwrap();
    stream.info().await.unwrap().state.messages
}

/// Fetches what is waiting on provider `agb`'s consumer and acks it; returns the subjects.
async fn fetch_own(js: &jetstream::Context, agb: &str) -> Result<Vec<String>, String> {
    let consumer: jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream(auth::provider_consumer(agb), "RZ_ASSIGNMENT")
        .await
        .map_err(|e| e.to_string())?;
    let mut batch = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut subjects = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.map_err(|e| e.to_string())?;
        subjects.push(m.subject.to_string());
        m.double_ack().await.map_err(|e| e.to_string())?;
    }
    Ok(subjects)
}

#[tokio::test]
async fn a_provider_reads_its_own_events_through_its_consumer_and_nothing_else() {
    let dir = temp_dir();
    let conf = write_config(&dir, &[A, B]);
    let server = Server::start(&dir, &conf);
    let (_s, service, _) = connect_as(&server, "service-assignment").await;
    let (_o, operator, _) = connect_as(&server, "operator").await;
    let (provider, a, mut a_errors) = connect_as(&server, &format!("provider-{A}")).await;

    // A core subscription to the namespace is refused: it receives nothing.
    let mut everything = provider.subscribe("rz.>").await.unwrap();
    let e = violation(&mut a_errors, "Permissions Violation for Subscription").await;
    assert!(e.contains("rz.>"), "{e}");

    // The assignment service publishes its events: 3 for A, 2 for B, 1 for no provider.
    publish_events(&service, Some(A), 3).await;
    publish_events(&service, Some(B), 2).await;
    publish_events(&service, None, 1).await;
    assert_eq!(stream_messages(&operator).await, 6);
    provision(&server, &[A, B]);
    let got = tokio::time::timeout(Duration::from_millis(500), everything.next()).await;
    assert!(
        matches!(got, Err(_) | Ok(None)),
        "a refused subscription delivered an event"
    );

    // A consumer with B's filter (or any consumer) is refused.
    let create = a
        .create_consumer_on_stream(
            jetstream::consumer::pull::Config {
                durable_name: Some("mine".into()),
                filter_subject: auth::provider_filter(&ns(), B),
                ..Default::default()
            },
            "RZ_ASSIGNMENT",
        )
        .await;
    assert!(create.is_err(), "A created a consumer with B's filter");
    violation(&mut a_errors, "$JS.API.CONSUMER.CREATE.RZ_ASSIGNMENT").await;

    // B's consumer: neither its info nor a fetch.
    let info = a
        .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
            auth::provider_consumer(B),
            "RZ_ASSIGNMENT",
        )
        .await;
    assert!(info.is_err(), "A read B's consumer");
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.RZ_ASSIGNMENT.provider-{B}");
    let fetched = provider
        .request(next.clone(), r#"{"batch":10,"no_wait":true}"#.into())
        .await;
    assert!(fetched.is_err(), "A fetched from B's consumer");
    violation(&mut a_errors, &next).await;
    let mut b_consumer: jetstream::consumer::PullConsumer = operator
        .get_consumer_from_stream(auth::provider_consumer(B), "RZ_ASSIGNMENT")
        .await
        .unwrap();
    let b_info = b_consumer.info().await.unwrap();
    assert_eq!(
        (b_info.delivered.stream_sequence, b_info.num_pending),
        (0, 2)
    );

    // Any publish is refused: a fake event on its own subject, on another context, through
    // JetStream; nothing is stored.
    provider
        .publish(
            ns().subject("assignment", Some("0222"), Some(A), "issued"),
            "fake".into(),
        )
        .await
        .unwrap();
    violation(
        &mut a_errors,
        "Permissions Violation for Publish to \"rz.assignment",
    )
    .await;
    provider
        .publish("rz.access.0222._.decided", "fake".into())
        .await
        .unwrap();
    violation(
        &mut a_errors,
        "Permissions Violation for Publish to \"rz.access",
    )
    .await;
    let js_publish = a
        .publish(
            ns().subject("assignment", Some("0222"), Some(A), "issued"),
            "fake".into(),
        )
        .await;
    if let Ok(ack) = js_publish {
        assert!(
            ack.await.is_err(),
            "a provider's JetStream publish was acknowledged"
        );
    }
    provider.flush().await.unwrap();
    assert_eq!(stream_messages(&operator).await, 6);

    // A fetches all of its own events (and only those) and its acks are taken.
    let subjects = fetch_own(&a, A).await.unwrap();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .all(|s| s == &format!("rz.assignment.0222.{A}.issued"))
    );
    let mut own: jetstream::consumer::PullConsumer = a
        .get_consumer_from_stream(auth::provider_consumer(A), "RZ_ASSIGNMENT")
        .await
        .unwrap();
    let own = own.info().await.unwrap();
    assert_eq!((own.num_pending, own.num_ack_pending), (0, 0));
    assert_eq!(own.ack_floor.consumer_sequence, 3);
    // B's events are still all there for B.
    let (_pb, b, _) = connect_as(&server, &format!("provider-{B}")).await;
    assert_eq!(fetch_own(&b, B).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_service_publishes_its_own_events_and_reads_the_streams_it_consumes_only() {
    let dir = temp_dir();
    let conf = write_config(&dir, &[A]);
    let server = Server::start(&dir, &conf);
    let (_s, assignment, _) = connect_as(&server, "service-assignment").await;
    publish_events(&assignment, Some(A), 2).await;

    // Notification reads the assignment stream through a durable consumer of its own.
    let (_n, notification, _) = connect_as(&server, "service-notification").await;
    let stream = notification.get_stream("RZ_ASSIGNMENT").await.unwrap();
    let consumer = stream
        .get_or_create_consumer(
            "notification",
            jetstream::consumer::pull::Config {
                durable_name: Some("notification".into()),
                filter_subject: "rz.assignment.>".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut batch = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let mut read = 0;
    while let Some(m) = batch.next().await {
        m.unwrap().double_ack().await.unwrap();
        read += 1;
    }
    assert_eq!(read, 2);

    // A service cannot publish another context's events, nor notification any.
    let (reg, reg_js, mut reg_errors) = connect_as(&server, "service-registration").await;
    reg.publish("rz.assignment.0222._.lifecycle", "fake".into())
        .await
        .unwrap();
    violation(
        &mut reg_errors,
        "Permissions Violation for Publish to \"rz.assignment",
    )
    .await;
    // Nor read a stream it does not consume.
    assert!(reg_js.get_stream("RZ_ASSIGNMENT").await.is_err());
    let (n, _, mut n_errors) = connect_as(&server, "service-notification").await;
    n.publish("rz.assignment.0222._.lifecycle", "fake".into())
        .await
        .unwrap();
    violation(&mut n_errors, "Permissions Violation for Publish").await;
    let (_o, operator, _) = connect_as(&server, "operator").await;
    assert_eq!(stream_messages(&operator).await, 2);
}

#[tokio::test]
async fn wrong_or_absent_credentials_are_refused() {
    let dir = temp_dir();
    let conf = write_config(&dir, &[A]);
    let server = Server::start(&dir, &conf);

    let none = connect_with_auth(&server, &NatsAuth::default()).await;
    let e = none.expect_err("connected without credentials");
    assert!(e.to_lowercase().contains("authorization"), "{e}");

    let stranger = dir.join("stranger.nk");
    let pair = nkeys::KeyPair::new_user();
    std::fs::write(&stranger, pair.seed().unwrap()).unwrap();
    let unknown = connect_with_auth(
        &server,
        &NatsAuth::nkey(&stranger, auth::inbox_prefix(&ns(), "stranger")),
    )
    .await;
    let e = unknown.expect_err("connected with an unknown nkey");
    assert!(e.to_lowercase().contains("authorization"), "{e}");

    let garbage = dir.join("garbage.nk");
    std::fs::write(&garbage, "not a seed").unwrap();
    let bad = auth::connect_options("test", &NatsAuth::nkey(&garbage, "_INBOX.x".into())).await;
    assert!(matches!(
        bad,
        Err(rz_eventing::EventingError::Credentials(_))
    ));

    // The right seed connects.
    connect_as(&server, &format!("provider-{A}")).await;
}

#[tokio::test]
async fn providers_are_added_and_ended_by_a_reload_without_a_restart() {
    let dir = temp_dir();
    let conf = write_config(&dir, &[A]);
    let server = Server::start(&dir, &conf);
    let pid = server.child.id();
    let (_s, service, _) = connect_as(&server, "service-assignment").await;
    publish_events(&service, Some(A), 1).await;
    publish_events(&service, Some(C), 2).await;
    provision(&server, &[A]);

    // C has no user yet.
    let c_auth = user_auth(&dir, &format!("provider-{C}"));
    assert!(connect_with_auth(&server, &c_auth).await.is_err());

    // C added: config regenerated (A's seed kept), consumer made, server reloaded.
    let a_seed = std::fs::read_to_string(dir.join(format!("pki/provider-{A}/nats.nk"))).unwrap();
    write_config(&dir, &[A, C]);
    assert_eq!(
        std::fs::read_to_string(dir.join(format!("pki/provider-{A}/nats.nk"))).unwrap(),
        a_seed
    );
    provision(&server, &[A, C]);
    let (pa, a_before, _) = connect_as(&server, &format!("provider-{A}")).await;
    server.reload();
    let (_pc, c, _) = connect_as(&server, &format!("provider-{C}")).await;
    assert_eq!(fetch_own(&c, C).await.unwrap().len(), 2);

    // A ended: its user gone after the reload (new connections refused, its open one cannot
    // fetch) and its consumer deleted.
    write_config(&dir, &[C]);
    provision(&server, &[C]);
    server.reload();
    let a_auth = user_auth(&dir, &format!("provider-{A}"));
    let e = connect_with_auth(&server, &a_auth)
        .await
        .expect_err("an ended provider connected after the reload");
    assert!(e.to_lowercase().contains("authorization"), "{e}");
    assert!(fetch_own(&a_before, A).await.is_err());
    // The server closed its open connection at the reload, and does not take it back.
    assert_eq!(pa.connection_state(), nats::connection::State::Disconnected);
    let (_o, operator, _) = connect_as(&server, "operator").await;
    let a_consumer = operator
        .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
            auth::provider_consumer(A),
            "RZ_ASSIGNMENT",
        )
        .await;
    assert!(
        a_consumer.is_err(),
        "the ended provider's consumer is still there"
    );
    // Ending it again is no error.
    auth::remove_provider_consumer(&operator, &ns(), A)
        .await
        .unwrap();
    assert_eq!(server.child.id(), pid, "the server was restarted");
}

/// Registration built with `[nats] nkey_seed_file` (its seed from `rzctl nats config`) against the
/// authenticated server: `Foundation::start` ensures its stream and the dead-letter stream with
/// the service's scoped permissions. With a provider's seed instead it does not start.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_starts_with_its_own_seed_and_not_with_a_providers() {
    let dir = temp_dir();
    let conf = write_config(&dir, &[A]);
    let server = Server::start(&dir, &conf);
    let pki = dir.join("pki");
    let o = Command::new(env!("CARGO_BIN_EXE_rzctl"))
        .args(["pki", "init", "--dir", pki.to_str().unwrap()])
        .args(["--providers", A, "--municipalities", "0222"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tls = rz_pki::Pki::open(&pki).unwrap();
    let env = rz_testkit::TestEnv::load();
    let config = |seed: &str| {
        let mut config = registration::Config {
            tls: tls.tls("service-registration"),
            ..registration::Config::default()
        };
        config.identity.token_keys = vec![tls.token_key_pub()];
        config.database.max_connections = 2;
        config.nats.url = server.url.clone();
        config.nats.namespace = "rz".into();
        config.nats.nkey_seed_file = Some(pki.join(seed).join("nats.nk"));
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config
    };

    let mut refused = config(&format!("provider-{A}"));
    refused.database.url = env.fresh_database().await;
    match registration::App::build(refused).await {
        Ok(_) => panic!("registration started with a provider's credentials"),
        Err(e) => assert!(e.to_string().contains("nats"), "{e}"),
    }

    let mut own = config("service-registration");
    own.database.url = env.fresh_database().await;
    let app = registration::App::build(own).await.unwrap();
    let (_o, operator, _) = connect_as(&server, "operator").await;
    for stream in ["RZ_REGISTRATION", "RZ_DLQ"] {
        operator.get_stream(stream).await.unwrap();
    }
    drop(app);
}

/// A server that requires TLS (its certificate from the region's test PKI): a client with the
/// CA (`NatsAuth::tls_ca`) and its seed connects; without the CA it is refused.
#[tokio::test]
async fn a_server_that_requires_tls_takes_clients_that_trust_its_ca() {
    let dir = temp_dir();
    let pki = dir.join("pki");
    let o = Command::new(env!("CARGO_BIN_EXE_rzctl"))
        .args(["pki", "init", "--dir", pki.to_str().unwrap()])
        .args(["--providers", A, "--municipalities", "0222"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let conf = write_config(&dir, &[A]);
    // A service certificate is also a server certificate for localhost and 127.0.0.1.
    let cert = pki.join("service-registration");
    let tls = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}",
        cert.join("tls.crt").display(),
        cert.join("tls.key").display()
    );
    let server = Server::start_with(&dir, &conf, &tls);

    let mut creds = user_auth(&dir, &format!("provider-{A}"));
    let plain = connect_with_auth(&server, &creds).await;
    assert!(plain.is_err(), "connected to a TLS server without TLS");

    creds.tls_ca = Some(pki.join("ca.crt"));
    let (client, _, _) = connect_with_auth(&server, &creds).await.unwrap();
    assert!(client.server_info().tls_required);

    // The service path (retrying connect, as Foundation::start uses it) works over TLS too.
    let mut service = user_auth(&dir, "service-assignment");
    service.tls_ca = Some(pki.join("ca.crt"));
    let (_c, js) = rz_eventing::connect_with(&server.url, "assignment", &service)
        .await
        .unwrap();
    rz_eventing::ensure_stream(&js, &ns(), "assignment", &Default::default())
        .await
        .unwrap();
}
