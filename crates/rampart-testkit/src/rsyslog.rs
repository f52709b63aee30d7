//! A throwaway rsyslog (Debian's `rsyslogd` with `rsyslog-gnutls`) receiving RFC 5425 syslog over
//! TLS on a free loopback port, writing each message's MSGID and text to a file; stopped on drop
//! and on demand, for outage tests. `scripts/test` installs the packages when missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct RsyslogServer {
    pub port: u16,
    /// The receiver's self-signed certificate (for `localhost` and 127.0.0.1): the CA to trust.
    pub cert_file: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RsyslogServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) =
            rampart::tls::self_signed(&["localhost", "127.0.0.1"]).expect("self-signed");
        let cert_file = dir.path().join("cert.pem");
        std::fs::write(&cert_file, cert).expect("cert");
        std::fs::write(dir.path().join("key.pem"), key).expect("key");
        let port = crate::free_port();
        let d = dir.path().display();
        let conf = format!(
            r#"global(workDirectory="{d}" DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile="{d}/cert.pem" DefaultNetstreamDriverCertFile="{d}/cert.pem"
  DefaultNetstreamDriverKeyFile="{d}/key.pem" maxMessageSize="64k")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="msgonly" type="string" string="%msgid% %msg%\n")
*.* action(type="omfile" file="{d}/received.log" template="msgonly")
"#
        );
        std::fs::write(dir.path().join("rsyslog.conf"), conf).expect("conf");
        let mut server = Self {
            port,
            cert_file,
            dir,
            child: None,
        };
        server.restart();
        server
    }

    /// Starts the receiver (again) on the same port, and waits until it listens.
    pub fn restart(&mut self) {
        let d = self.dir.path();
        let mut child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (apt-get install rsyslog rsyslog-gnutls)");
        crate::wait_for_port(&mut child, self.port, "rsyslogd");
        self.child = Some(child);
    }

    /// Stops it gracefully (it writes out what it received).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Every message received so far: (MSGID, text).
    pub fn received(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.path().join("received.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, text)| (id.to_owned(), text.trim_start().to_owned()))
            .collect()
    }
}

impl Drop for RsyslogServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
