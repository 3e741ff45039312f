//! RFC 5424 syslog: the Falco alert as the message, over UDP (RFC 5426,
//! one message per datagram) or TCP (RFC 6587, octet-counted frames).
//!
//! Syslog has no acknowledgement: a message counts as accepted once the
//! kernel took all of it. Over TCP the connection is checked for a close
//! by the receiver before each write, so a receiver that went away is
//! noticed and the message retried on a new connection rather than
//! written into a dead one; bytes the kernel had already taken when the
//! receiver crashed can still be lost, which only a receiver with
//! application-level acknowledgements (the HTTP outputs) rules out.

use std::time::Duration;

use tokio::{
    io::AsyncWriteExt,
    net::{TcpStream, UdpSocket},
    sync::Mutex,
};
use vigil_falco::Alert;

use crate::{
    config::{OutputConfig, Transport},
    output::SendError,
};

/// APP-NAME of every message.
pub const APP_NAME: &str = "vigil";
/// MSGID of every message: it carries one Falco alert.
pub const MSG_ID: &str = "falco-alert";
/// The largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;
/// RFC 5424 marks a UTF-8 message with a byte order mark.
const BOM: char = '\u{feff}';

pub struct SyslogOutput {
    address: String,
    facility: u8,
    timeout: Duration,
    connection: Mutex<Option<Connection>>,
    transport: Transport,
}

enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

impl SyslogOutput {
    pub fn new(config: &OutputConfig) -> Self {
        Self {
            address: config.address.clone(),
            facility: config.facility,
            timeout: config.timeout(),
            connection: Mutex::new(None),
            transport: config.transport,
        }
    }

    pub async fn send(&self, alert: &Alert) -> Result<(), SendError> {
        let message = format(alert, self.facility);
        if self.transport == Transport::Udp && message.len() > MAX_DATAGRAM {
            return Err(SendError::TooLarge {
                target: self.target(),
                size: message.len(),
                limit: MAX_DATAGRAM,
            });
        }
        let mut connection = self.connection.lock().await;
        let result =
            match tokio::time::timeout(self.timeout, self.write(&mut connection, &message)).await {
                Ok(result) => result,
                Err(_) => Err(SendError::Timeout {
                    target: self.target(),
                    timeout_ms: self.timeout.as_millis() as u64,
                }),
            };
        if result.is_err() {
            // The next attempt starts on a new connection (and resolves the
            // name again).
            *connection = None;
        }
        result
    }

    async fn write(
        &self,
        connection: &mut Option<Connection>,
        message: &str,
    ) -> Result<(), SendError> {
        if let Some(Connection::Tcp(stream)) = connection
            && peer_closed(stream)
        {
            *connection = None;
        }
        let open = match connection {
            Some(open) => open,
            None => connection.insert(self.connect().await?),
        };
        let written = match open {
            Connection::Udp(socket) => socket
                .send(message.as_bytes())
                .await
                .and_then(|sent| whole(sent, message.len())),
            Connection::Tcp(stream) => {
                let frame = format!("{} {message}", message.len());
                stream.write_all(frame.as_bytes()).await
            }
        };
        written.map_err(|e| SendError::Write {
            target: self.target(),
            detail: e.to_string(),
        })
    }

    async fn connect(&self) -> Result<Connection, SendError> {
        let error = |e: std::io::Error| SendError::Connect {
            target: self.target(),
            detail: e.to_string(),
        };
        match self.transport {
            Transport::Tcp => {
                let stream = TcpStream::connect(&self.address).await.map_err(error)?;
                stream.set_nodelay(true).map_err(error)?;
                Ok(Connection::Tcp(stream))
            }
            Transport::Udp => {
                let peer = tokio::net::lookup_host(&self.address)
                    .await
                    .map_err(error)?
                    .next()
                    .ok_or_else(|| SendError::Connect {
                        target: self.target(),
                        detail: "the name resolves to no address".to_owned(),
                    })?;
                let local = if peer.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let socket = UdpSocket::bind(local).await.map_err(error)?;
                socket.connect(peer).await.map_err(error)?;
                Ok(Connection::Udp(socket))
            }
        }
    }

    fn target(&self) -> String {
        let transport = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        format!("syslog {transport}://{}", self.address)
    }
}

/// Whether the receiver has closed the connection (a read would return
/// end of file now); what it may have sent is not syslog's and is dropped.
fn peer_closed(stream: &TcpStream) -> bool {
    let mut buffer = [0u8; 256];
    loop {
        match stream.try_read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

fn whole(sent: usize, len: usize) -> std::io::Result<()> {
    if sent == len {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "only {sent} of {len} bytes were sent"
        )))
    }
}

/// The RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME vigil - falco-alert - BOM<alert JSON>`.
pub fn format(alert: &Alert, facility: u8) -> String {
    let pri = u16::from(facility) * 8 + u16::from(severity(&alert.priority));
    format!(
        "<{pri}>1 {} {} {APP_NAME} - {MSG_ID} - {BOM}{}",
        timestamp(&alert.time),
        hostname(&alert.hostname),
        alert.to_json()
    )
}

/// Falco's priorities are syslog's severities, in the same order.
pub fn severity(priority: &str) -> u8 {
    match priority {
        "Emergency" => 0,
        "Alert" => 1,
        "Critical" => 2,
        "Error" => 3,
        "Warning" => 4,
        "Notice" => 5,
        "Informational" => 6,
        _ => 7,
    }
}

/// The alert's RFC 3339 time with at most the six fraction digits RFC 5424
/// allows; NILVALUE when it is not such a time.
fn timestamp(time: &str) -> String {
    let Some(utc) = time.strip_suffix('Z') else {
        return "-".to_owned();
    };
    let (seconds, fraction) = utc.split_once('.').unwrap_or((utc, ""));
    let shape = seconds.len() == 19
        && seconds.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shape || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return "-".to_owned();
    }
    if fraction.is_empty() {
        format!("{seconds}Z")
    } else {
        format!("{seconds}.{}Z", &fraction[..fraction.len().min(6)])
    }
}

/// HOSTNAME is 1–255 printable US-ASCII characters without spaces.
fn hostname(name: &str) -> String {
    let printable: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if printable.is_empty() {
        "-".to_owned()
    } else {
        printable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(priority: &str, time: &str, hostname: &str) -> Alert {
        Alert {
            uuid: Default::default(),
            output: "o".into(),
            priority: priority.into(),
            rule: "r".into(),
            time: time.into(),
            output_fields: Default::default(),
            source: "syscall".into(),
            tags: Vec::new(),
            hostname: hostname.into(),
        }
    }

    #[test]
    fn a_message_has_rfc_5424_header_fields() {
        let alert = alert("Critical", "2023-05-25T13:44:05.478445995Z", "node-a");
        let message = format(&alert, 16);
        let expected = format!(
            "<130>1 2023-05-25T13:44:05.478445Z node-a vigil - falco-alert - \u{feff}{}",
            alert.to_json()
        );
        assert_eq!(message, expected);
    }

    #[test]
    fn hostile_times_and_hostnames_cannot_break_the_header() {
        let message = format(&alert("Debug", "yesterday Z", "evil host\n<1>1"), 0);
        assert!(
            message.starts_with("<7>1 - evilhost<1>1 vigil - falco-alert - "),
            "{message}"
        );
        let message = format(&alert("Loud", "2023-05-25T13:44:05Z", ""), 1);
        assert!(
            message.starts_with("<15>1 2023-05-25T13:44:05Z - vigil"),
            "{message}"
        );
    }
}
