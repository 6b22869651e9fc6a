//! A private, real Slurm 22.05 cluster for tests: its own munged (own key and
//! socket), one slurmctld and one slurmd per node, all on loopback, in a temp
//! directory, following docs' recipe (/work/shared/reference/real-components.md §1).
//!
//! Every daemon runs in the foreground (`-D`/`-F`) as a child of the test
//! process, so dropping the cluster kills exactly the processes it started.
//! Missing binaries fail loudly, naming the script that installs them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Clusters are started one at a time: ports are picked free just before
/// use, so two clusters starting together could pick the same ones.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The binaries the cluster needs, with the packages that provide them.
const BINARIES: &[(&str, &str)] = &[
    ("munged", "munge"),
    ("slurmctld", "slurmctld"),
    ("slurmd", "slurmd"),
    ("scontrol", "slurm-client"),
    ("sinfo", "slurm-client"),
    ("squeue", "slurm-client"),
    ("sbatch", "slurm-client"),
];

/// Where Debian installs them; `PATH` is searched too.
const SEARCH: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// A running test cluster; dropping it stops every daemon it started.
pub struct SlurmCluster {
    dir: tempfile::TempDir,
    /// The Slurm node names, `node001`, ...
    pub nodes: Vec<String>,
    children: Vec<(String, Child)>,
    _serial: MutexGuard<'static, ()>,
}

fn find_binary(name: &str, package: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    SEARCH
        .iter()
        .map(PathBuf::from)
        .chain(path_dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` (Debian package {package}) is not installed, so the real-Slurm tests \
                 cannot run: run scripts/test.sh, which installs slurmctld slurmd slurm-client munge"
            )
        })
}

/// `count` distinct loopback ports that were free a moment ago.
fn free_ports(count: usize) -> Vec<u16> {
    // Holding all listeners until every port is known keeps them distinct.
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("local address").port())
        .collect()
}

impl SlurmCluster {
    /// Starts a cluster of `node_count` idle nodes and waits until Slurm
    /// reports all of them idle.
    pub fn start(node_count: usize) -> SlurmCluster {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, package) in BINARIES {
            find_binary(name, package);
        }
        let dir = tempfile::Builder::new()
            .prefix("crus-slurm-")
            .tempdir()
            .expect("create a temp dir");
        let nodes: Vec<String> = (1..=node_count).map(|n| format!("node{n:03}")).collect();
        let mut cluster = SlurmCluster {
            dir,
            nodes,
            children: Vec::new(),
            _serial: serial,
        };
        cluster.start_munge();
        cluster.write_conf();
        cluster.start_slurm();
        cluster.wait_all_idle(Duration::from_secs(20));
        cluster
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The slurm.conf every command must be given (`SLURM_CONF`).
    pub fn conf(&self) -> PathBuf {
        self.path("etc/slurm.conf")
    }

    fn spawn(&mut self, label: &str, program: &str, args: &[&str]) {
        let package = BINARIES
            .iter()
            .find(|(name, _)| *name == program)
            .map_or("slurm", |(_, package)| package);
        let log = std::fs::File::create(self.path(&format!("log/{label}.out")))
            .expect("create a daemon log");
        let child = Command::new(find_binary(program, package))
            .args(args)
            .env("SLURM_CONF", self.conf())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("could not start {program}: {error}"));
        self.children.push((label.to_string(), child));
    }

    fn start_munge(&mut self) {
        for sub in ["munge", "etc", "state", "run", "log", "jobs"] {
            std::fs::create_dir_all(self.path(sub)).expect("create cluster dirs");
        }
        // munged refuses a socket directory others cannot traverse.
        set_mode(&self.path("munge"), 0o755);
        let key: Vec<u8> = (0..1024).map(|_| fastrand::u8(..)).collect();
        let key_path = self.path("munge/munge.key");
        std::fs::write(&key_path, key).expect("write the munge key");
        set_mode(&key_path, 0o600);
        let arg = |name: &str, file: &str| format!("--{name}={}", self.path(file).display());
        let args = [
            "--foreground".to_string(),
            "--force".to_string(),
            arg("socket", "munge/munge.socket"),
            arg("key-file", "munge/munge.key"),
            arg("pid-file", "munge/munged.pid"),
            arg("seed-file", "munge/munged.seed"),
            arg("log-file", "log/munged.log"),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn("munged", "munged", &args);
        let socket = self.path("munge/munge.socket");
        self.wait("munged's socket", Duration::from_secs(10), || {
            socket.exists()
        });
    }

    fn write_conf(&self) {
        let ports = free_ports(self.nodes.len() + 1);
        let d = self.dir.path().display();
        let mut conf = format!(
            "ClusterName=crustest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge/munge.socket
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmdPidFile={d}/run/slurmd-%n.pid
SlurmdLogFile={d}/log/slurmd-%n.log
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmctldLogFile={d}/log/slurmctld.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
SlurmdTimeout=30
MailProg=/bin/true
MpiDefault=none
",
            ctld = ports[0],
        );
        for (node, port) in self.nodes.iter().zip(&ports[1..]) {
            conf.push_str(&format!(
                "NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} CPUs=2 \
                 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1000 State=UNKNOWN\n"
            ));
        }
        conf.push_str("PartitionName=batch Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n");
        std::fs::write(self.conf(), conf).expect("write slurm.conf");
    }

    fn start_slurm(&mut self) {
        let conf = self.conf().display().to_string();
        self.spawn("slurmctld", "slurmctld", &["-D", "-c", "-i", "-f", &conf]);
        for node in self.nodes.clone() {
            std::fs::create_dir_all(self.path(&format!("spool/{node}")))
                .expect("create a slurmd spool dir");
            self.spawn(
                &format!("slurmd-{node}"),
                "slurmd",
                &["-D", "-N", &node, "-f", &conf],
            );
        }
    }

    /// Runs a Slurm client command against this cluster; panics on failure.
    pub fn command(&self, program: &str, args: &[&str]) -> String {
        let output = Command::new(find_binary(program, "slurm-client"))
            .args(args)
            .env("SLURM_CONF", self.conf())
            .current_dir(self.path("jobs"))
            .output()
            .unwrap_or_else(|error| panic!("could not run {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}): {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn try_command(&self, program: &str, args: &[&str]) -> Option<String> {
        let output = Command::new(find_binary(program, "slurm-client"))
            .args(args)
            .env("SLURM_CONF", self.conf())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn wait_all_idle(&mut self, timeout: Duration) {
        let expected = self.nodes.len();
        self.wait("every node idle in sinfo", timeout, || {
            self.try_command("sinfo", &["-N", "-h", "-o", "%N %T"])
                .is_some_and(|out| {
                    out.lines()
                        .filter(|line| line.split_whitespace().nth(1) == Some("idle"))
                        .count()
                        == expected
                })
        });
    }

    /// Submits `sbatch --wrap <script>` on `node`, exclusively (so the node is
    /// `ALLOCATED`), and waits until the job runs; returns the job id.
    pub fn submit_running_job(&mut self, node: &str, script: &str) -> String {
        let out = self.command(
            "sbatch",
            &[
                "--parsable",
                "--exclusive",
                "-w",
                node,
                "-t",
                "5",
                "-o",
                "/dev/null",
                "--wrap",
                script,
            ],
        );
        let job = out.trim().split(';').next().unwrap_or_default().to_string();
        self.wait(
            &format!("job {job} running on {node}"),
            Duration::from_secs(20),
            || {
                self.try_command("squeue", &["-h", "-j", &job, "-o", "%T"])
                    .is_some_and(|state| state.trim() == "RUNNING")
            },
        );
        job
    }

    /// Polls `done` every 50 ms until it holds; panics, with the daemons'
    /// logs, after `timeout`.
    fn wait(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < timeout,
                "waited {timeout:?} for {what}, in vain\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The tail of every daemon log, for failure messages.
    fn logs(&self) -> String {
        let mut text = String::new();
        let Ok(entries) = std::fs::read_dir(self.path("log")) else {
            return text;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
        paths.sort();
        for path in paths {
            let content = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            text.push_str(&format!(
                "--- {} ---\n{}\n",
                path.display(),
                tail.join("\n")
            ));
        }
        text
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        // Only the children started here, slurmds first so slurmctld does not
        // log them as lost while it still runs; munged last.
        for (label, child) in self.children.iter_mut().rev() {
            if let Err(error) = child.kill() {
                eprintln!("could not stop {label}: {error}");
            }
            let _ = child.wait();
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("set file mode");
}
