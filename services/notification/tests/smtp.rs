//! The smtp letter channel against a tiny SMTP relay started by the test (real TCP, the real
//! conversation), with the dispatcher on the real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestApp, spawn_app};
use notification::config::{LetterChannelKind, LettersConfig};
use notification::dispatch::LetterDispatcher;
use notification::smtp::{SmtpChannel, SmtpConfig};
use notification::store::{self, NewLetter};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use uuid::Uuid;

const MAILROOM: &str = "postkamer@doetinchem.example";
const FROM: &str = "brieven@regio.example";

#[derive(Debug, Clone, Default)]
struct Mail {
    helo: String,
    from: String,
    to: Vec<String>,
    headers: Vec<String>,
    body: String,
    bare_lf: bool,
}

/// Answers EHLO (advertising 8BITMIME), MAIL, RCPT, DATA and QUIT; un-stuffs the data; answers
/// the end of data with 451 for the first `refuse` messages, then 250 (and keeps the message).
struct Relay {
    addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
}

async fn relay(refuse: usize) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let refuse = Arc::new(AtomicUsize::new(refuse));
    let kept = mails.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (mails, refuse) = (kept.clone(), refuse.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                write.write_all(b"220 relay ESMTP\r\n").await.unwrap();
                let mut mail = Mail::default();
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap() == 0 {
                        return;
                    }
                    let cmd = line.trim_end_matches("\r\n").to_owned();
                    let reply: &[u8] = if let Some(h) = cmd.strip_prefix("EHLO ") {
                        mail.helo = h.into();
                        b"250-relay\r\n250 8BITMIME\r\n"
                    } else if let Some(f) = cmd.strip_prefix("MAIL FROM:") {
                        mail.from = f.into();
                        b"250 ok\r\n"
                    } else if let Some(t) = cmd.strip_prefix("RCPT TO:") {
                        mail.to.push(t.into());
                        b"250 ok\r\n"
                    } else if cmd == "DATA" {
                        write.write_all(b"354 go on\r\n").await.unwrap();
                        let mut in_headers = true;
                        loop {
                            let mut l = String::new();
                            read.read_line(&mut l).await.unwrap();
                            match l.strip_suffix("\r\n") {
                                Some(".") => break,
                                Some(text) => {
                                    let text = text.strip_prefix('.').unwrap_or(text);
                                    if in_headers && text.is_empty() {
                                        in_headers = false;
                                    } else if in_headers {
                                        mail.headers.push(text.into());
                                    } else {
                                        mail.body.push_str(text);
                                        mail.body.push('\n');
                                    }
                                }
                                None => mail.bare_lf = true,
                            }
                        }
                        let left = refuse.load(Ordering::SeqCst);
                        if left > 0 {
                            refuse.store(left - 1, Ordering::SeqCst);
                            b"451 try again later\r\n"
                        } else {
                            mails.lock().unwrap().push(std::mem::take(&mut mail));
                            b"250 queued\r\n"
                        }
                    } else if cmd == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        return;
                    } else {
                        b"500 what\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    Relay { addr, mails }
}

async fn write_letter(app: &TestApp, municipality: &str, text: &str) -> Uuid {
    let mut conn = app.pool.acquire().await.unwrap();
    let event_id = Uuid::now_v7();
    store::insert_letter(
        &mut conn,
        &app.keys,
        &NewLetter {
            event_id: Some(event_id),
            kind: "decision_granted",
            municipality,
            client_key: "key",
            assignment_number: None,
            case_id: None,
            product_id: None,
            ends_on: None,
            text,
        },
    )
    .await
    .unwrap();
    sqlx::query_scalar("SELECT id FROM letters WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

fn config(relay: SocketAddr) -> LettersConfig {
    LettersConfig {
        channel: LetterChannelKind::Smtp,
        max_attempts: 4,
        initial_backoff_ms: 10,
        max_backoff_ms: 40,
        send_timeout_ms: 2_000,
        lease_ms: 5_000,
        smtp: SmtpConfig {
            relay: relay.to_string(),
            from: FROM.into(),
            mailroom: [("0222".to_string(), MAILROOM.to_string())].into(),
            ..SmtpConfig::default()
        },
        ..LettersConfig::default()
    }
}

#[tokio::test]
async fn smtp_channel_mails_each_letter_to_its_mailroom_once_dot_stuffed_after_a_refusal() {
    let app = spawn_app().await;
    let relay = relay(1).await;
    let text = "Gemeente Doetinchem\n\n.Een regel met een punt vooraan\n..en twee\n\nMet vriendelijke groet,\n";
    let id = write_letter(&app, "0222", text).await;
    let elsewhere = write_letter(&app, "1859", "Gemeente Berkelland\n").await;
    let cfg = config(relay.addr);
    let channel = Arc::new(SmtpChannel::new(cfg.smtp.clone()).unwrap());
    let d = LetterDispatcher::new(app.pool.clone(), app.keys.clone(), channel, cfg);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        d.dispatch_once().await.unwrap();
        let l = store::letter(&app.pool, &app.keys, id)
            .await
            .unwrap()
            .unwrap();
        if l.status != "pending" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{l:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let l = store::letter(&app.pool, &app.keys, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(l.status, "sent");
    // The first end of data was answered 451 (transient): sent on the second attempt.
    assert_eq!(l.attempts, 2);
    assert_eq!(l.channel.as_deref(), Some("smtp"));
    let mails = relay.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.helo, "notification.regiozorg");
    assert_eq!(m.from, format!("<{FROM}> BODY=8BITMIME"));
    assert_eq!(m.to, vec![format!("<{MAILROOM}>")]);
    assert_eq!(m.body, text);
    assert!(!m.bare_lf);
    assert!(
        m.headers.contains(&format!("Message-ID: <{id}@regiozorg>")),
        "{:?}",
        m.headers
    );
    assert!(m.headers.contains(&format!("X-Regiozorg-Letter: {id}")));
    // A municipality without a mailroom address: failed at once, with the reason.
    let e = store::letter(&app.pool, &app.keys, elsewhere)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.status, "failed");
    assert_eq!(e.attempts, 1);
    assert_eq!(
        e.last_error.as_deref(),
        Some(
            "smtp: no mailroom address for municipality 1859 (notification.letters.smtp.mailroom)"
        )
    );
    app.stop().await;
}

#[tokio::test]
async fn a_relay_that_is_down_is_retried_and_then_fails_the_letter() {
    let app = spawn_app().await;
    // A port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let id = write_letter(&app, "0222", "Gemeente Doetinchem\n").await;
    let cfg = config(addr);
    let d = LetterDispatcher::new(
        app.pool.clone(),
        app.keys.clone(),
        Arc::new(SmtpChannel::new(cfg.smtp.clone()).unwrap()),
        cfg,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let l = loop {
        d.dispatch_once().await.unwrap();
        let l = store::letter(&app.pool, &app.keys, id)
            .await
            .unwrap()
            .unwrap();
        if l.status != "pending" {
            break l;
        }
        assert!(tokio::time::Instant::now() < deadline, "{l:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(l.status, "failed");
    assert_eq!(l.attempts, 4);
    assert!(
        l.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("smtp: connect to relay:")),
        "{l:?}"
    );
    app.stop().await;
}
