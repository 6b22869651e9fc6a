//! Reading job traces in the Standard Workload Format (SWF) of the Parallel
//! Workloads Archive, so the simulated cluster replays real jobs.
//!
//! An SWF file is plain text (often gzipped): `;` lines are header comments,
//! every other line is one job with 18 white-space separated fields. The
//! simulator uses fields 1 (job number), 2 (submit time), 4 (run time),
//! 5 (allocated processors, or 8, requested processors, when 5 is missing)
//! and 9 (requested time); `-1` means "not recorded".

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The NASA Ames iPSC/860 trace of Q4 1993 (cleaned version): 128 nodes,
/// 18,239 job records, gzipped SWF. Parse it with [`nasa_ipsc`].
pub static NASA_IPSC_TRACE: &[u8] =
    include_bytes!("../../../../data/traces/NASA-iPSC-1993-3.1-cln.swf.gz");

/// How the bundled trace is named in error messages.
const NASA_IPSC_NAME: &str = "NASA-iPSC-1993-3.1-cln.swf.gz (bundled)";

/// The fewest fields a job line must have: the simulator reads up to field 9.
const MIN_FIELDS: usize = 9;

/// One job of a trace, as the simulator replays it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceJob {
    /// The job's number in the trace (SWF field 1), kept for reference.
    pub id: u64,
    /// When it was submitted, counted from the start of the trace.
    pub submit: Duration,
    /// How long it ran once started.
    pub run_time: Duration,
    /// How many nodes it occupies: one node per processor, as on machines with
    /// exclusive nodes such as the iPSC/860.
    pub nodes: u32,
    /// Its time limit as the scheduler sees it; never shorter than `run_time`.
    pub requested_time: Duration,
}

/// A parsed trace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SwfTrace {
    /// The jobs that can be replayed, in file order.
    pub jobs: Vec<TraceJob>,
    /// How many job lines the file has (comment and blank lines excluded).
    pub records: usize,
    /// How many of those were skipped because their run time or processor
    /// count is zero or not recorded.
    pub skipped: usize,
}

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SwfError {
    /// The file could not be read, decompressed, or is not UTF-8 text.
    #[error("cannot read trace {trace}: {error}")]
    Read {
        /// The file (or bundled trace) being read.
        trace: String,
        /// What went wrong.
        #[source]
        error: std::io::Error,
    },
    /// A job line is malformed.
    #[error("{trace}:{line}: {message}")]
    Line {
        /// The file (or bundled trace) being read.
        trace: String,
        /// The 1-based line number in the (decompressed) text.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
}

impl From<SwfError> for crus_core::Error {
    fn from(error: SwfError) -> Self {
        crus_core::Error::invalid(error.to_string())
    }
}

/// Parses the bundled NASA iPSC/860 trace ([`NASA_IPSC_TRACE`]).
pub fn nasa_ipsc() -> Result<SwfTrace, SwfError> {
    parse_swf(NASA_IPSC_TRACE, NASA_IPSC_NAME)
}

/// Reads and parses the SWF file at `path`, gzipped or not.
pub fn read_swf_file(path: &Path) -> Result<SwfTrace, SwfError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| SwfError::Read {
        trace: name.clone(),
        error,
    })?;
    parse_swf(&bytes, &name)
}

/// Parses SWF text in `bytes`, gzipped (recognised by its magic number) or
/// not. `trace` names the input in error messages.
pub fn parse_swf(bytes: &[u8], trace: &str) -> Result<SwfTrace, SwfError> {
    let read_error = |error| SwfError::Read {
        trace: trace.to_string(),
        error,
    };
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        text
    } else {
        String::from_utf8(bytes.to_vec()).map_err(|error| {
            read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, error))
        })?
    };
    parse_swf_text(&text, trace)
}

/// Parses SWF text; see [`parse_swf`].
fn parse_swf_text(text: &str, trace: &str) -> Result<SwfTrace, SwfError> {
    let mut parsed = SwfTrace::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        parsed.records += 1;
        let job = parse_job_line(line).map_err(|message| SwfError::Line {
            trace: trace.to_string(),
            line: index + 1,
            message,
        })?;
        match job {
            Some(job) => parsed.jobs.push(job),
            None => parsed.skipped += 1,
        }
    }
    Ok(parsed)
}

/// One job line: the job, `None` when it cannot be replayed (no run time or
/// no processors), or what is wrong with the line.
fn parse_job_line(line: &str) -> Result<Option<TraceJob>, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < MIN_FIELDS {
        return Err(format!(
            "expected at least {MIN_FIELDS} fields, found {}: {line:?}",
            fields.len()
        ));
    }
    // SWF fields are numbered from 1.
    let field = |number: usize, name: &str| -> Result<i64, String> {
        let text = fields[number - 1];
        text.parse::<i64>()
            .map_err(|_| format!("field {number} ({name}) is not an integer: {text:?}"))
    };
    let id = field(1, "job number")?;
    let submit = field(2, "submit time")?;
    let run_time = field(4, "run time")?;
    let allocated = field(5, "allocated processors")?;
    let requested_processors = field(8, "requested processors")?;
    let requested_time = field(9, "requested time")?;

    let id = u64::try_from(id).map_err(|_| format!("field 1 (job number) is negative: {id}"))?;
    let submit = u64::try_from(submit)
        .map_err(|_| format!("field 2 (submit time) is negative: {submit}"))?;
    let processors = if allocated < 0 {
        requested_processors
    } else {
        allocated
    };
    if run_time <= 0 || processors <= 0 {
        return Ok(None);
    }
    let nodes = u32::try_from(processors)
        .map_err(|_| format!("processor count {processors} is too large"))?;
    // Both are positive here; a limit below the run time (or missing) means
    // the job's own run time is the best known limit.
    let run_time = run_time.unsigned_abs();
    let requested_time = u64::try_from(requested_time)
        .ok()
        .filter(|requested| *requested >= run_time)
        .unwrap_or(run_time);
    Ok(Some(TraceJob {
        id,
        submit: Duration::from_secs(submit),
        run_time: Duration::from_secs(run_time),
        nodes,
        requested_time: Duration::from_secs(requested_time),
    }))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const SAMPLE: &str = "\
; Version: 2.2
; MaxNodes: 128

    1        0     -1   1451  128     -1    -1   -1     -1    -1 -1   1   1  -1 -1 -1 -1 -1
    2       60     -1    100   -1     -1    -1    8    3600    -1 -1   1   1  -1 -1 -1 -1 -1
    3      120     -1    500    4     -1    -1   -1     10    -1 -1   1   1  -1 -1 -1 -1 -1
    4      130     -1      0    4     -1    -1   -1     -1    -1 -1   1   1  -1 -1 -1 -1 -1
    5      140     -1     10   -1     -1    -1   -1     -1    -1 -1   1   1  -1 -1 -1 -1 -1
";

    #[test]
    fn parses_jobs_and_skips_comments_and_unusable_jobs() {
        let trace = parse_swf(SAMPLE.as_bytes(), "sample.swf").unwrap();
        assert_eq!(trace.records, 5);
        assert_eq!(trace.skipped, 2, "zero run time and no processors");
        assert_eq!(
            trace.jobs,
            [
                TraceJob {
                    id: 1,
                    submit: Duration::ZERO,
                    run_time: Duration::from_secs(1451),
                    nodes: 128,
                    requested_time: Duration::from_secs(1451),
                },
                TraceJob {
                    id: 2,
                    submit: Duration::from_secs(60),
                    run_time: Duration::from_secs(100),
                    nodes: 8,
                    requested_time: Duration::from_secs(3600),
                },
                TraceJob {
                    id: 3,
                    submit: Duration::from_secs(120),
                    run_time: Duration::from_secs(500),
                    nodes: 4,
                    requested_time: Duration::from_secs(500),
                },
            ]
        );
    }

    #[test]
    fn reads_gzip() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(SAMPLE.as_bytes()).unwrap();
        let gzipped = encoder.finish().unwrap();
        let trace = parse_swf(&gzipped, "sample.swf.gz").unwrap();
        assert_eq!(trace.jobs.len(), 3);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let text = "; header\n1 0 -1 10 4 -1 -1 -1 -1\n2 x -1 10 4 -1 -1 -1 -1\n";
        let error = parse_swf(text.as_bytes(), "jobs.swf").unwrap_err();
        assert_eq!(
            error.to_string(),
            "jobs.swf:3: field 2 (submit time) is not an integer: \"x\""
        );
        let error = parse_swf(b"1 0 -1 10\n", "short.swf").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("short.swf:1: expected at least 9 fields, found 4"),
            "{error}"
        );
        let error = parse_swf(&[0x1f, 0x8b, 0, 1, 2], "broken.swf.gz").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read trace broken.swf.gz"),
            "{error}"
        );
    }

    #[test]
    fn bundled_trace_loads() {
        let trace = nasa_ipsc().unwrap();
        assert_eq!(trace.records, 18_239);
        // 173 records have a run time of 0 seconds: nothing to replay.
        assert_eq!(trace.skipped, 173);
        assert_eq!(trace.jobs.len(), 18_239 - 173);
        assert!(trace.jobs.iter().all(|job| (1..=128).contains(&job.nodes)));
        assert!(trace.jobs.is_sorted_by_key(|job| job.submit));
    }
}
