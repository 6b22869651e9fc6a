//! A private, real Slurm 22.05 cluster for tests: its own munged (own key and
//! socket), one slurmctld and one slurmd per node, all on loopback, in a temp
//! directory, following docs' recipe (/work/shared/reference/real-components.md §1).
//!
//! Reboots work without rebooting anything: slurm.conf names
//! `reboot/fake-reboot.sh` (written from `fake-reboot.sh` next to this file)
//! as `RebootProgram`. It stops the node's slurmd and starts it again with
//! `-b` after a delay, logs each reboot to `reboot/reboots.log`
//! ([`SlurmCluster::reboots`]), and fails or hangs a node on request
//! ([`SlurmCluster::set_fail`], [`SlurmCluster::set_hang`]).
//!
//! The daemons are started in the foreground (`-D`/`-F`) as children of the
//! test process; a slurmd restarted by a reboot is not. So dropping the
//! cluster kills every process whose command line or environment names the
//! cluster's directory (a fresh temp dir: only this cluster's daemons, the
//! reboot script and the jobs they run name it), then reaps its children.
//! Missing binaries fail loudly, naming the script that installs them.

// Each test binary that includes the harness uses a different part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The RebootProgram, with `@DIR@`, `@CONF@`, `@SLURMD@` and `@DELAY@` to fill in.
const FAKE_REBOOT: &str = include_str!("fake-reboot.sh");

/// How to set a cluster up; [`ClusterOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of nodes, `node001` ...
    pub nodes: usize,
    /// slurm.conf `ResumeTimeout`: how long a rebooting node may stay away
    /// before slurmctld marks it DOWN ("reboot timed out"). slurmctld checks
    /// it on a coarse timer: allow up to about 30 s more.
    pub resume_timeout: Duration,
    /// slurm.conf `ReturnToService`: with 2, a node marked DOWN (a timed-out
    /// reboot included) returns to service as soon as its slurmd registers;
    /// with 1 only a node DOWN for not responding does.
    pub return_to_service: u8,
    /// How long a rebooting node stays down (the reboot script's sleep).
    pub reboot_delay: Duration,
    /// slurm.conf `Weight=` of each node in order (`node001` first); nodes
    /// past the list's end get none (Slurm's default, 1).
    pub weights: Vec<u32>,
    /// slurm.conf `Feature=` of each node in order (comma-separated
    /// features); nodes past the list's end, or with an empty entry, get none.
    pub features: Vec<String>,
}

impl ClusterOptions {
    /// `nodes` nodes, ResumeTimeout 20 s, ReturnToService 2, reboots of 2 s.
    pub fn new(nodes: usize) -> ClusterOptions {
        ClusterOptions {
            nodes,
            resume_timeout: Duration::from_secs(20),
            return_to_service: 2,
            reboot_delay: Duration::from_secs(2),
            weights: Vec::new(),
            features: Vec::new(),
        }
    }
}

/// A running test cluster; dropping it stops every process it started.
pub struct SlurmCluster {
    dir: tempfile::TempDir,
    /// The Slurm node names, `node001`, ...
    pub nodes: Vec<String>,
    options: ClusterOptions,
    children: Vec<(String, Child)>,
    _serial: MutexGuard<'static, ()>,
}

/// One reboot, as the reboot script logged it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reboot {
    /// The Slurm node name.
    pub node: String,
    /// When its slurmd was stopped.
    pub down_at: SystemTime,
    /// When its slurmd was started again; `None` for a hung node.
    pub up_at: Option<SystemTime>,
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
    /// Starts a cluster of `node_count` idle nodes, with the default
    /// [`ClusterOptions`], and waits until Slurm reports all of them idle.
    pub fn start(node_count: usize) -> SlurmCluster {
        SlurmCluster::start_with(ClusterOptions::new(node_count))
    }

    /// Starts a cluster as `options` say and waits until Slurm reports all
    /// of its nodes idle.
    pub fn start_with(options: ClusterOptions) -> SlurmCluster {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, package) in BINARIES {
            find_binary(name, package);
        }
        let dir = tempfile::Builder::new()
            .prefix("crus-slurm-")
            .tempdir()
            .expect("create a temp dir");
        let nodes: Vec<String> = (1..=options.nodes).map(|n| format!("node{n:03}")).collect();
        let mut cluster = SlurmCluster {
            dir,
            nodes,
            options,
            children: Vec::new(),
            _serial: serial,
        };
        cluster.start_munge();
        cluster.write_reboot_program();
        cluster.write_conf();
        cluster.start_slurm();
        cluster.wait_all_idle(Duration::from_secs(20));
        cluster
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The cluster's directory; files written here by jobs are readable by the test.
    pub fn dir(&self) -> &Path {
        self.dir.path()
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

    fn write_reboot_program(&self) {
        std::fs::create_dir_all(self.path("reboot")).expect("create the reboot dir");
        let script = FAKE_REBOOT
            .replace("@DIR@", &self.path("reboot").display().to_string())
            .replace("@CONF@", &self.conf().display().to_string())
            .replace(
                "@SLURMD@",
                &find_binary("slurmd", "slurmd").display().to_string(),
            )
            .replace(
                "@DELAY@",
                &format!("{:.1}", self.options.reboot_delay.as_secs_f64()),
            );
        let path = self.path("reboot/fake-reboot.sh");
        std::fs::write(&path, script).expect("write the reboot program");
        set_mode(&path, 0o755);
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
ReturnToService={return_to_service}
RebootProgram={d}/reboot/fake-reboot.sh
ResumeTimeout={resume_timeout}
SlurmdTimeout=30
MailProg=/bin/true
MpiDefault=none
",
            ctld = ports[0],
            return_to_service = self.options.return_to_service,
            resume_timeout = self.options.resume_timeout.as_secs().max(1),
        );
        for (index, (node, port)) in self.nodes.iter().zip(&ports[1..]).enumerate() {
            let weight = self
                .options
                .weights
                .get(index)
                .map(|weight| format!(" Weight={weight}"))
                .unwrap_or_default();
            let features = self
                .options
                .features
                .get(index)
                .filter(|features| !features.is_empty())
                .map(|features| format!(" Feature={features}"))
                .unwrap_or_default();
            conf.push_str(&format!(
                "NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} CPUs=2 \
                 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1000{weight}{features} \
                 State=UNKNOWN\n"
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

    /// Stops slurmctld (SIGKILL, as a crash) and starts it again on its saved
    /// state (without `-c`), as an administrator's restart does; waits until
    /// it answers. Settings made with `scontrol update` that Slurm does not
    /// save are lost, as on a real cluster.
    pub fn restart_slurmctld(&mut self) {
        let at = self
            .children
            .iter()
            .position(|(label, _)| label == "slurmctld")
            .expect("a slurmctld was started");
        let (_, mut old) = self.children.remove(at);
        let _ = old.kill();
        let _ = old.wait();
        let conf = self.conf().display().to_string();
        self.spawn("slurmctld", "slurmctld", &["-D", "-i", "-f", &conf]);
        self.wait("slurmctld answering again", Duration::from_secs(30), || {
            self.try_command("sinfo", &["-h", "-o", "%P"]).is_some()
        });
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
        let job = self.submit_job(node, script);
        self.wait_running(std::slice::from_ref(&job));
        job
    }

    /// Submits `sbatch --wrap <script>` on `node`, exclusively, with a
    /// 5-minute limit, and returns the job id at once.
    pub fn submit_job(&self, node: &str, script: &str) -> String {
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
        out.trim().split(';').next().unwrap_or_default().to_string()
    }

    /// Waits until every job of `jobs` runs.
    pub fn wait_running(&self, jobs: &[String]) {
        let list = jobs.join(",");
        self.wait(
            &format!("jobs {list} running"),
            Duration::from_secs(30),
            || {
                self.try_command("squeue", &["-h", "-j", &list, "-o", "%T"])
                    .is_some_and(|states| {
                        states
                            .lines()
                            .filter(|state| state.trim() == "RUNNING")
                            .count()
                            == jobs.len()
                    })
            },
        );
    }

    /// `scontrol -o show node NODE`: one line of `Key=Value` fields.
    pub fn show_node(&self, node: &str) -> String {
        self.command("scontrol", &["-o", "show", "node", node])
    }

    /// Makes `node`'s next reboots fail at once: the RebootProgram exits 1
    /// and slurmd keeps running, so Slurm waits for ResumeTimeout.
    pub fn set_fail(&self, node: &str) {
        self.mark(&format!("fail-{node}"), "");
    }

    /// Makes `node`'s next reboot stop its slurmd for good.
    pub fn set_hang(&self, node: &str) {
        self.mark(&format!("hang-{node}"), "");
    }

    /// Makes `node` stay down for `delay` on its next reboots.
    pub fn set_reboot_delay(&self, node: &str, delay: Duration) {
        self.mark(
            &format!("delay-{node}"),
            &format!("{:.1}\n", delay.as_secs_f64()),
        );
    }

    fn mark(&self, name: &str, content: &str) {
        std::fs::write(self.path("reboot").join(name), content).expect("write a reboot marker");
    }

    /// Every reboot so far, in the order the reboot script logged them.
    pub fn reboots(&self) -> Vec<Reboot> {
        let text = match std::fs::read_to_string(self.path("reboot/reboots.log")) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(error) => panic!("cannot read the reboot log: {error}"),
        };
        text.lines()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [node, down_at, up_at] = fields[..] else {
                    panic!("reboot log line {line:?} is not `NODE DOWN_AT UP_AT`");
                };
                Reboot {
                    node: node.to_string(),
                    down_at: parse_epoch(down_at),
                    up_at: (up_at != "hang").then(|| parse_epoch(up_at)),
                }
            })
            .collect()
    }

    /// Polls `done` every 50 ms until it holds; panics, with the daemons'
    /// logs, after `timeout`.
    pub fn wait(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
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
        // A reboot in progress may start a slurmd between two looks, so look
        // again until a look finds nothing.
        let marker = format!("{}/", self.dir.path().display());
        for _ in 0..50 {
            let found = processes_naming(&marker);
            if found.is_empty() {
                break;
            }
            let pids: Vec<String> = found.iter().map(u32::to_string).collect();
            let killed = Command::new("kill")
                .arg("-KILL")
                .args(&pids)
                .stderr(Stdio::null())
                .status();
            if let Err(error) = killed {
                eprintln!("could not run kill for {pids:?}: {error}");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for (label, child) in &mut self.children {
            if let Err(error) = child.kill() {
                // Most are dead by now; kill fails only on a reaped child.
                if error.kind() != std::io::ErrorKind::InvalidInput {
                    eprintln!("could not stop {label}: {error}");
                }
            }
            let _ = child.wait();
        }
    }
}

/// Live processes (not this one) whose command line or environment contains
/// `marker`. Zombies and processes that vanish while being read are skipped.
fn processes_naming(marker: &str) -> Vec<u32> {
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let marker = marker.as_bytes();
    let names_marker = |bytes: &[u8]| bytes.windows(marker.len()).any(|window| window == marker);
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            ["cmdline", "environ"].iter().any(|file| {
                std::fs::read(format!("/proc/{pid}/{file}")).is_ok_and(|bytes| names_marker(&bytes))
            })
        })
        .collect()
}

/// `1795469770.708231583` (Unix seconds) as a time.
fn parse_epoch(text: &str) -> SystemTime {
    let seconds: f64 = text
        .parse()
        .unwrap_or_else(|_| panic!("{text:?} is not Unix seconds"));
    UNIX_EPOCH + Duration::from_secs_f64(seconds)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("set file mode");
}
