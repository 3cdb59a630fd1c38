//! What each subcommand does. Errors carry their exit code: 2 for input the
//! user can fix, 1 for a run that failed.

use crate::cli::{CheckFormat, Cli, Command, DataCommand, ExportFormat};
use crate::data::jsonl::{self, write_documents};
use crate::data::{self, Document, Split};
use crate::plan::{self, PlanError};
use crate::report::{diagnostics_table, markdown_table, mention_table, results_table, score_files, seeds_table};
use crate::runner::{self, write_atomic, RunError, RunOptions, RunRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Jsonl(#[from] jsonl::JsonlError),
    #[error(transparent)]
    Icd(#[from] crate::icd::IcdError),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Not an error so much as "not yet": runs still queued or running (`status`).
    #[error("{0}")]
    InFlight(String),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Run(e) if !e.is_user_input() => 1,
            AppError::Failed(_) => 1,
            AppError::Cluster(e) if !e.is_user_input() => 1,
            AppError::InFlight(_) => 3,
            _ => 2,
        }
    }
}

pub fn run(cli: Cli) -> Result<(), AppError> {
    match cli.command {
        Command::Run { experiments, force, results, quiet, stop_after_steps, only } => {
            let opts = RunOptions { force, progress: !quiet, stop_after_steps, leave_busy: !only.is_empty() };
            run_experiments(&experiments, &results, opts, &only)
        }
        Command::Submit { experiments, slurm: _, partition, gpus_per_task, cpus_per_task, mem, time, account, max_parallel, extra, dry_run, results } => {
            let threads = cpus_per_task.unwrap_or_else(|| tch::get_num_threads().max(1) as u32);
            let opts = crate::cluster::SlurmOptions { partition, gpus_per_task, cpus_per_task: threads, mem, time, account, max_parallel, extra };
            submit_command(&experiments, &results, &opts, dry_run)
        }
        Command::Status { experiments, results, log_lines } => status_command(&experiments, &results, log_lines),
        Command::Plan { experiments, results, json, explain } => match explain {
            Some(pair) => explain_fingerprints(&experiments, &results, &pair[0], &pair[1]),
            None => plan_experiments(&experiments, &results, json),
        },
        Command::Score { gold, pred, train, split, code_table, bootstrap, seed, json } => {
            score_files(&gold, &pred, train.as_deref(), &split, &code_table, bootstrap, seed, json)
        }
        Command::Data { command } => data_command(command),
        Command::Report { inputs, out, results, all_versions } => report_command(&inputs, &results, out.as_deref(), all_versions),
        Command::Compare { a, b, split, samples, seed, results, json } => compare_command(&a, &b, &results, &split, samples, seed, json),
        Command::Check { config, results, update, format } => check_command(&config, &results, update, format),
        Command::Generate { backbone, prompts, max_new_tokens, temperature, seed, device, raw, constrain_codes } => {
            generate_command(&backbone, &prompts, max_new_tokens, temperature, seed, &device, raw, constrain_codes)
        }
        Command::Speed { shapes, cases, device, dtype, threads, seq, batch, prompt, new_tokens, checkpointing, lora_dropout, repeats, warmup, peak_tflops } => {
            let args = SpeedArgs { seq, batch, prompt, new_tokens, checkpointing, lora_dropout, repeats, warmup, peak_tflops };
            speed_command(&shapes, &cases, &device, &dtype, threads, &args)
        }
        Command::Info { device } => {
            let dirty = if env!("ICDBENCH_GIT_DIRTY") == "true" { ", uncommitted changes" } else { "" };
            println!("icdbench {} (git {}{dirty}; code identity {})", env!("CARGO_PKG_VERSION"), env!("ICDBENCH_GIT_REVISION"), crate::fingerprint::code_identity());
            let stages: Vec<String> = crate::fingerprint::Stage::ALL.iter().map(|&s| format!("{} {}", s.name(), crate::fingerprint::stage_identity(s).get(..8).unwrap_or("none"))).collect();
            println!("stage code identities: {}", stages.join(" · "));
            println!("{}", crate::device::describe());
            if let Some(spec) = device {
                let device = crate::device::resolve(&spec).map_err(|e| AppError::Input(e.to_string()))?;
                let report = crate::device::smoke_test(device).map_err(AppError::Failed)?;
                println!("{report}");
            }
            Ok(())
        }
    }
}

fn run_experiments(files: &[PathBuf], results: &Path, opts: RunOptions, only: &[String]) -> Result<(), AppError> {
    // Plan everything first: a bad file fails before any work starts.
    let mut planned = Vec::new();
    for f in files {
        planned.push((f, plan::plan_file(f, results)?));
    }
    if !only.is_empty() {
        planned = select_only(planned, only)?;
    }
    for (file, runs) in planned {
        eprintln!("{}: {} run(s)", file.display(), runs.len());
        let records = runner::execute(&runs, &opts, |r| {
            let how = if r.reused { "reused (same fingerprint, nothing recomputed)" } else { "computed" };
            eprintln!("  {} {} -> {} {how}", r.run.fingerprint.short(), r.run.label(), r.run.dir.display());
        })?;
        let mut table = results_table(&records);
        if let Some(seeds) = seeds_table(&records) {
            table.push_str(&format!("\nOver seeds:\n\n{seeds}"));
        }
        if let Some(by_mention) = mention_table(&records) {
            table.push_str(&format!("\n{by_mention}"));
        }
        if let Some(diagnostics) = diagnostics_table(&records) {
            table.push_str(&format!("\n{diagnostics}"));
        }
        if only.is_empty() {
            // The experiment's comparisons and summary describe all its runs, not the one a task computed.
            table.push_str(&compared(file, &records, results)?);
            write_summary(&records, &table)?;
        }
        println!("\n{}\n\n{table}", file.display());
    }
    Ok(())
}

/// The planned runs `--only` names (full fingerprints or prefixes of 12+ hex digits). A
/// fingerprint no run has here is an error: fingerprints name the device and CPU threads,
/// so a task planned on another kind of node finds none.
fn select_only<'a>(planned: Vec<(&'a PathBuf, Vec<plan::PlannedRun>)>, only: &[String]) -> Result<Vec<(&'a PathBuf, Vec<plan::PlannedRun>)>, AppError> {
    let mut prefixes = Vec::with_capacity(only.len());
    for o in only {
        if o.len() < 12 || !o.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::Input(format!("--only {o:?}: give a run's fingerprint (12 or more hex digits, as `icdbench plan` prints it)")));
        }
        prefixes.push(o.to_lowercase());
    }
    let matches = |r: &plan::PlannedRun, p: &str| r.fingerprint.as_str().starts_with(p);
    if let Some(o) = prefixes.iter().find(|p| !planned.iter().any(|(_, runs)| runs.iter().any(|r| matches(r, p)))) {
        let names: Vec<String> = planned.iter().map(|(f, _)| f.display().to_string()).collect();
        return Err(AppError::Input(format!(
            "--only {o}: no run of {} has this fingerprint when planned here ({}, {} libtorch threads); fingerprints include the device and CPU threads, so submit from a node like the compute nodes and keep OMP_NUM_THREADS as submitted (`icdbench plan` lists this node's fingerprints)",
            names.join(", "),
            crate::device::describe(),
            tch::get_num_threads()
        )));
    }
    let wanted = |r: &plan::PlannedRun| prefixes.iter().any(|p| matches(r, p));
    Ok(planned.into_iter().map(|(f, runs)| (f, runs.into_iter().filter(|r| wanted(r)).collect::<Vec<_>>())).filter(|(_, runs)| !runs.is_empty()).collect())
}

/// `icdbench submit --slurm`: one job array per experiment with the runs nobody has finished,
/// is computing or has queued.
fn submit_command(files: &[PathBuf], results: &Path, opts: &crate::cluster::SlurmOptions, dry_run: bool) -> Result<(), AppError> {
    use crate::cluster::{self, Decision};
    // The tasks run with this many threads; plan (fingerprint) with it too.
    tch::set_num_threads(opts.cpus_per_task as i32);
    let mut planned = Vec::new();
    for f in files {
        planned.push((f, plan::plan_file(f, results)?));
    }
    let cwd = std::env::current_dir().map_err(|e| AppError::Input(format!("current folder: {e}")))?;
    let absolute = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    let binary = std::env::current_exe().map_err(|e| AppError::Failed(format!("cannot find the icdbench binary to run in the tasks: {e}")))?;
    let queue = cluster::Queue::read();
    if let Some(why) = &queue.unknown {
        eprintln!("warning: the Slurm queue could not be read ({why}); only finished and running runs are left out");
    }
    for (file, runs) in planned {
        let Some(slurm_dir) = cluster::slurm_dir(&runs) else {
            println!("{}: no runs", file.display());
            continue;
        };
        let subs = cluster::submissions(&slurm_dir)?;
        let decisions = cluster::decide(&runs, &subs, &queue)?;
        let mut tasks = Vec::new();
        println!("{}: {} run(s)", file.display(), runs.len());
        for (run, d) in runs.iter().zip(&decisions) {
            let what = match d {
                Decision::Finished => "finished".to_string(),
                Decision::Running(who) => format!("running in {who}"),
                Decision::Queued { task, state } => format!("queued as task {task} ({state})"),
                Decision::Submit => {
                    tasks.push(cluster::Task { index: tasks.len(), fingerprint: run.fingerprint.to_string(), label: run.label() });
                    format!("task {}", tasks.len() - 1)
                }
            };
            println!("  {} {:<40} {what}", run.fingerprint.short(), run.label());
        }
        if tasks.is_empty() {
            println!("nothing to submit");
            continue;
        }
        let batch = cluster::batch_name();
        let batch_dir = absolute(&slurm_dir.join(&batch));
        let record = cluster::Submission {
            batch,
            job_id: String::new(),
            submitted: crate::store::unix_now(),
            experiment: absolute(file),
            results: absolute(results),
            threads: opts.cpus_per_task,
            tasks,
        };
        let script = cluster::job_script(&record, &batch_dir, opts, &binary, &cwd)?;
        if dry_run {
            println!("\n{script}");
            continue;
        }
        let n = record.tasks.len();
        let record = cluster::submit(&batch_dir, &script, record)?;
        println!("submitted job {} ({n} task(s)) -> {}", record.job_id, batch_dir.display());
    }
    Ok(())
}

/// `icdbench status`: a line per run, a summary; exit 0 when all are done, 3 while any is in flight.
fn status_command(files: &[PathBuf], results: &Path, log_lines: usize) -> Result<(), AppError> {
    let mut planned = Vec::new();
    for f in files {
        let mut runs = plan::plan_file_without_inputs(f, results)?.0;
        // Runs are looked at as their newest submission planned them: with its thread count.
        let threads = match crate::cluster::slurm_dir(&runs) {
            Some(dir) => crate::cluster::submissions(&dir)?.last().map(|(_, s)| s.threads),
            None => None,
        };
        if let Some(t) = threads.filter(|&t| t as i32 != tch::get_num_threads()) {
            tch::set_num_threads(t as i32);
            runs = plan::plan_file_without_inputs(f, results)?.0;
        }
        planned.push((f, runs));
    }
    let queue = crate::cluster::Queue::read();
    let mut lines = Vec::new();
    for (file, runs) in planned {
        println!("{}: {} run(s)", file.display(), runs.len());
        for line in crate::cluster::status(&runs, &queue, log_lines)? {
            println!("  {line}");
            lines.push(line);
        }
    }
    let summary = crate::cluster::StatusSummary::of(&lines, queue.unknown.clone());
    println!("{summary}");
    if summary.all_done() {
        Ok(())
    } else if summary.in_flight() {
        Err(AppError::InFlight("some runs are still queued or running".into()))
    } else {
        Err(AppError::Failed("some runs are not finished and nothing is queued or running for them; `icdbench submit --slurm` submits what is left".into()))
    }
}

/// The experiment's `[[compare]]` pairs among `records`, each as `icdbench compare` prints it
/// (paired bootstrap on the run's first evaluated split, with its samples — 1000 when it
/// draws none — and seed).
fn compared(file: &Path, records: &[RunRecord], results: &Path) -> Result<String, AppError> {
    let exp = crate::config::load_experiment(file).map_err(|e| AppError::Input(e.to_string()))?;
    let mut out = String::new();
    for pair in &exp.compare {
        let pairs = crate::report::compare::experiment_pairs(pair, records);
        if pairs.is_empty() {
            out.push_str(&format!("\n[[compare]] {} vs {}: no pair of finished runs\n", pair.a, pair.b));
        }
        for (a, b) in pairs {
            let eval = &a.run.spec.eval;
            let Some(split) = eval.splits.first() else { continue };
            let (da, db) = (a.run.dir.display().to_string(), b.run.dir.display().to_string());
            let samples = if eval.bootstrap_samples == 0 { 1000 } else { eval.bootstrap_samples };
            let c = crate::report::compare::compare(&da, &db, results, split, samples, a.run.spec.seed).map_err(report_error)?;
            out.push_str(&format!("\nIs {} better than {}?\n\n{}", pair.b, pair.a, crate::report::compare::table(&c)));
        }
    }
    Ok(out)
}

/// `results/<experiment>/summary.md`: the table of the latest invocation, with the runs behind it.
fn write_summary(records: &[RunRecord], table: &str) -> Result<(), AppError> {
    let Some(first) = records.first() else { return Ok(()) };
    let Some(dir) = first.run.dir.parent() else { return Ok(()) };
    let mut text = format!("# {}\n\n{table}\nRuns:\n\n", first.run.spec.experiment);
    for r in records {
        text.push_str(&format!("- `{}` {} — {}\n", r.run.fingerprint, r.run.label(), r.run.dir.display()));
    }
    write_atomic(&dir.join("summary.md"), |w| std::io::Write::write_all(w, text.as_bytes()))?;
    Ok(())
}

/// Report errors keep their kind: input the user can fix exits 2, anything else 1.
fn report_error(e: crate::report::ReportError) -> AppError {
    if e.is_user_input() {
        AppError::Input(e.to_string())
    } else {
        AppError::Failed(e.to_string())
    }
}

fn report_command(inputs: &[PathBuf], results: &Path, out: Option<&Path>, all_versions: bool) -> Result<(), AppError> {
    let written = crate::report::write_report(inputs, results, out, all_versions).map_err(report_error)?;
    for w in &written.warnings {
        eprintln!("warning: {w}");
    }
    println!("{}", written.markdown);
    eprintln!("{} runs -> {}", written.runs, written.out.display());
    for f in &written.files {
        eprintln!("  {}", f.display());
    }
    Ok(())
}

fn compare_command(a: &str, b: &str, results: &Path, split: &str, samples: usize, seed: u64, json: bool) -> Result<(), AppError> {
    let c = crate::report::compare::compare(a, b, results, split, samples, seed).map_err(report_error)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
    } else {
        print!("{}", crate::report::compare::table(&c));
    }
    Ok(())
}

/// `icdbench check`: prints what moved in the chosen format; a regression, a missing result or a failed run exits 1.
fn check_command(config: &Path, results: &Path, update: bool, format: CheckFormat) -> Result<(), AppError> {
    use crate::check::CheckError;
    let (outcome, written) = crate::check::check(config, results, update, true).map_err(|e| match e {
        CheckError::Input(m) => AppError::Input(m),
        CheckError::Plan(e) => AppError::Plan(e),
        CheckError::Run(e) => AppError::Run(e),
    })?;
    match format {
        CheckFormat::Text => print!("{}", outcome.text()),
        CheckFormat::Markdown => print!("{}", outcome.markdown()),
        CheckFormat::Github => print!("{}{}", outcome.github_annotations(), outcome.markdown()),
    }
    if update {
        return match written {
            Some(path) => {
                eprintln!("wrote {} ({} runs)", path.display(), outcome.runs);
                Ok(())
            }
            None => Err(AppError::Failed(format!("a run failed; {} left as it was", outcome.reference))),
        };
    }
    if outcome.passed() {
        Ok(())
    } else {
        Err(AppError::Failed(outcome.summary()))
    }
}

fn plan_experiments(files: &[PathBuf], results: &Path, json: bool) -> Result<(), AppError> {
    for f in files {
        let (runs, missing) = plan::plan_file_without_inputs(f, results)?;
        println!("{}: {} run(s)", f.display(), runs.len());
        if !missing.is_empty() {
            println!("Missing inputs (fill them in before `icdbench run`; fingerprints below change once they exist):");
            for m in &missing {
                println!("  - {m}");
            }
        }
        let rows: Vec<Vec<String>> = runs
            .iter()
            .map(|r| {
                let state = match runner::finished(r) {
                    Ok(Some(_)) => "finished".to_string(),
                    Ok(None) => match crate::store::Lock::held_by(&crate::store::lock_path(&r.dir)) {
                        Ok(Some(h)) => format!("running ({})", h.describe()),
                        _ => "to run".to_string(),
                    },
                    Err(_) => "corrupt (rerun with --force)".to_string(),
                };
                vec![r.fingerprint.short().to_string(), r.label(), r.dir.display().to_string(), state]
            })
            .collect();
        print!("{}", markdown_table(&["fingerprint", "run", "results", "state"], &rows));
        if json {
            for r in &runs {
                let v = serde_json::json!({"fingerprint": r.fingerprint, "manifest": r.manifest});
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// `icdbench plan --explain A B`: which parts of two runs' keys differ.
fn explain_fingerprints(files: &[PathBuf], results: &Path, a: &str, b: &str) -> Result<(), AppError> {
    let mut planned = Vec::new();
    for f in files {
        planned.extend(plan::plan_file_without_inputs(f, results)?.0);
    }
    let find = |prefix: &str| -> Result<crate::fingerprint::Manifest, AppError> {
        if let Some(r) = planned.iter().find(|r| r.fingerprint.as_str().starts_with(prefix)) {
            return Ok(r.manifest.clone());
        }
        let short = &prefix[..prefix.len().min(12)];
        let experiments = std::fs::read_dir(results).map_err(|e| AppError::Input(format!("{}: {e}", results.display())))?;
        for exp in experiments.flatten() {
            let dir = exp.path().join(short);
            let path = dir.join(crate::store::record::MANIFEST);
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| AppError::Input(format!("{}: {e}", path.display())))?;
            if value.get("format").and_then(|f| f.as_u64()) != Some(u64::from(crate::fingerprint::MANIFEST_FORMAT)) {
                return Err(AppError::Input(format!("{}: written by an older icdbench (no key to compare); rerun it to compare", path.display())));
            }
            let m: crate::fingerprint::Manifest = serde_json::from_value(value).map_err(|e| AppError::Input(format!("{}: {e}", path.display())))?;
            if m.fingerprint().as_str().starts_with(prefix) {
                return Ok(m);
            }
        }
        Err(AppError::Input(format!("no planned run and no run folder under {} has a fingerprint starting with {prefix:?}", results.display())))
    };
    let (ma, mb) = (find(a)?, find(b)?);
    let diff = ma.explain(&mb);
    println!("{} vs {}", ma.fingerprint().short(), mb.fingerprint().short());
    if diff.is_empty() {
        println!("  the same key: one run");
    }
    for line in diff {
        println!("  {line}");
    }
    Ok(())
}

/// `icdbench score`: scores another tool's predictions exactly as a run scores its own and
/// prints the table, or with `json` the run's `SplitMetrics`.
#[allow(clippy::too_many_arguments)]
fn score_files(gold: &Path, pred: &Path, train: Option<&Path>, split: &str, code_table: &str, bootstrap: usize, seed: u64, json: bool) -> Result<(), AppError> {
    let split = Split::parse_scored(split).ok_or_else(|| AppError::Input(format!("--split {split:?}: use train, val, test or evidence")))?;
    let request = score_files::ScoreRequest { gold, pred, train, split, code_table, bootstrap, seed };
    let out = score_files::score_files(&request).map_err(report_error)?;
    for w in &out.warnings {
        eprintln!("{w}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out.scored).map_err(|e| AppError::Failed(e.to_string()))?);
        return Ok(());
    }
    println!("{} documents ({split}) scored against {}", out.n_docs, gold.display());
    print!("{}", score_files::split_table(&out.scored));
    Ok(())
}

fn data_command(command: DataCommand) -> Result<(), AppError> {
    match command {
        DataCommand::Export { experiment, out, format } => export(&experiment, &out, format),
        DataCommand::Stats { experiment, plot, json } => data_stats(&experiment, plot.as_deref(), json),
        DataCommand::BuildCodes { xml, out } => {
            let summary = crate::icd::build_table(&xml, &out)?;
            println!("{}: {summary:?}", out.display());
            Ok(())
        }
        DataCommand::Code { codes, code_table } => {
            let config = crate::data::Data { code_table, ..Default::default() };
            let table = data::code_table(&config, Path::new("."))?;
            for raw in codes {
                let e = table.lookup(&raw)?;
                let parent = e.parent.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "–".into());
                let chapter = table.chapter_of(&e.code).map(|c| format!("{} {}", c.number, c.description)).unwrap_or_default();
                println!("{}  {}", e.code, e.description);
                println!("  billable: {}  parent: {parent}  block: {}  chapter: {chapter}", if e.billable { "yes" } else { "no" }, e.block);
                for t in &e.inclusion_terms {
                    println!("  includes: {t}");
                }
            }
            Ok(())
        }
    }
}

/// Reads an experiment file and loads its data as a run would, warning about what loading found.
fn load_data(experiment: &Path) -> Result<(crate::config::Experiment, data::Dataset), AppError> {
    let text = std::fs::read_to_string(experiment).map_err(|e| AppError::Input(format!("{}: cannot read: {e}", experiment.display())))?;
    let exp = crate::config::parse_experiment(&text, experiment).map_err(|e| AppError::Plan(PlanError::Config(e)))?;
    let base = experiment.parent().unwrap_or(Path::new("."));
    let codes = data::code_table(&exp.data, base)?;
    let (dataset, report) = data::load(&exp.data, base, &codes)?;
    if !report.is_clean() {
        eprintln!("warning: {}", report.summary());
    }
    if let Some(l) = &report.leakage {
        eprintln!("leakage: {}", l.describe());
    }
    Ok((exp, dataset))
}

fn data_stats(experiment: &Path, plot: Option<&Path>, json: bool) -> Result<(), AppError> {
    let (exp, dataset) = load_data(experiment)?;
    let stats = crate::report::data_stats::compute(&dataset);
    if json {
        println!("{}", serde_json::to_string_pretty(&stats).unwrap_or_default());
    } else {
        print!("{}", stats.table());
    }
    let path = plot.map(Path::to_path_buf).unwrap_or_else(|| Path::new("results").join(&exp.experiment.name).join("data-stats.png"));
    crate::report::data_stats::plot(&stats, &dataset, &path).map_err(|e| AppError::Failed(e.to_string()))?;
    eprintln!("plot: {}", path.display());
    Ok(())
}

fn export(experiment: &Path, out: &Path, format: ExportFormat) -> Result<(), AppError> {
    let (_, dataset) = load_data(experiment)?;
    let mut counts = BTreeMap::new();
    for split in Split::SCORED {
        let docs: Vec<&Document> = dataset.split(split).collect();
        if docs.is_empty() {
            continue;
        }
        counts.insert(split.to_string(), docs.len());
        if matches!(format, ExportFormat::Jsonl | ExportFormat::Both) {
            let path = out.join(format!("{split}.jsonl"));
            write_atomic(&path, |w| write_documents(w, docs.iter().copied()))?;
            println!("{}", path.display());
        }
        if matches!(format, ExportFormat::Parquet | ExportFormat::Both) {
            let path = out.join(format!("{split}.parquet"));
            crate::data::export::write_parquet(&path, &docs).map_err(|e| AppError::Failed(format!("{}: {e}", path.display())))?;
            println!("{}", path.display());
        }
    }
    let pool: Vec<String> = dataset.pool.iter().map(|c| c.to_string()).collect();
    let unseen: Vec<String> = dataset.unseen_codes(Split::Test).iter().map(|c| c.to_string()).collect();
    let meta = serde_json::json!({"name": dataset.name, "documents": counts, "pool": pool, "unseen_test_codes": unseen});
    runner::write_json(&out.join("dataset.json"), &meta)?;
    println!("{}", out.join("dataset.json").display());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn generate_command(backbone: &str, prompts: &[String], max_new_tokens: usize, temperature: f64, seed: u64, device: &str, raw: bool, constrain: bool) -> Result<(), AppError> {
    use crate::model::{backbone as bb, generate};
    let device = crate::device::resolve(device).map_err(|e| AppError::Input(e.to_string()))?;
    let started = std::time::Instant::now();
    let loaded = bb::load(backbone, bb::WeightFormat::Auto, bb::DType::Auto, Path::new("."), device).map_err(|e| AppError::Input(e.to_string()))?;
    eprintln!("loaded {} on {} in {:.1}s", backbone, crate::device::name(device), started.elapsed().as_secs_f64());
    let tok = &loaded.tokenizer;
    let ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            let text = if raw { p.clone() } else { tok.chat_prompt(None, p) };
            tok.encode(&text, tok.add_bos_default())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| AppError::Input(e.to_string()))?;
    let constraint = if constrain {
        let codes = crate::icd::CodeSet::builtin()?;
        let trie = generate::CodeTrie::new(codes.billable().map(|e| e.code.as_str()));
        Some(generate::CodeConstraint::new(trie, tok, generate::Scope::Anywhere))
    } else {
        None
    };
    let cfg = generate::GenerationConfig { max_new_tokens, temperature, seed, ..Default::default() };
    let out = generate::generate(&loaded.model, tok, &ids, &cfg, constraint.as_ref()).map_err(|e| AppError::Failed(e.to_string()))?;
    for (p, t) in prompts.iter().zip(&out.texts) {
        println!("> {p}\n{}\n", t.trim());
    }
    let th = out.throughput;
    eprintln!(
        "prefill {} tokens in {:.2}s ({:.0} tok/s) · decode {} tokens in {:.2}s ({:.1} tok/s)",
        th.prefill_tokens, th.prefill_seconds, th.prefill_per_second(), th.decode_tokens, th.decode_seconds, th.decode_per_second()
    );
    Ok(())
}

/// `icdbench speed`'s workload flags.
struct SpeedArgs {
    seq: i64,
    batch: Option<i64>,
    prompt: i64,
    new_tokens: i64,
    checkpointing: bool,
    lora_dropout: f64,
    repeats: Option<usize>,
    warmup: usize,
    peak_tflops: Option<f64>,
}

fn speed_command(shapes: &str, cases: &str, device: &str, dtype: &str, threads: i32, args: &SpeedArgs) -> Result<(), AppError> {
    use crate::train::speed::{measure_generate, measure_lora_step, Options, Shape, Workload, SHAPE_NAMES};
    let device = crate::device::resolve(device).map_err(|e| AppError::Input(e.to_string()))?;
    let kind = match dtype {
        "f32" | "float32" => tch::Kind::Float,
        "bf16" | "bfloat16" => tch::Kind::BFloat16,
        other => return Err(AppError::Input(format!("--dtype {other:?}: use f32 or bf16"))),
    };
    if threads > 0 {
        tch::set_num_threads(threads);
    }
    let cases: Vec<&str> = cases.split(',').map(str::trim).collect();
    if let Some(bad) = cases.iter().find(|c| !["lora_step", "generate"].contains(c)) {
        return Err(AppError::Input(format!("--cases: unknown case {bad:?}: use lora_step, generate")));
    }
    let positive = [("--seq", args.seq), ("--prompt", args.prompt), ("--new-tokens", args.new_tokens), ("--batch", args.batch.unwrap_or(1))];
    if let Some((flag, v)) = positive.iter().find(|(_, v)| *v < 1) {
        return Err(AppError::Input(format!("{flag} {v}: give at least 1")));
    }
    if args.seq < 2 && cases.contains(&"lora_step") {
        return Err(AppError::Input("--seq 1: a training row needs at least 2 tokens (one to read, one to predict)".into()));
    }
    if !(0.0..1.0).contains(&args.lora_dropout) {
        return Err(AppError::Input(format!("--lora-dropout {}: give a value in [0, 1)", args.lora_dropout)));
    }
    for name in shapes.split(',').map(str::trim) {
        let shape = Shape::parse(name).ok_or_else(|| AppError::Input(format!("--shapes: unknown shape {name:?}: use {}", SHAPE_NAMES.join(", "))))?;
        let repeats = args.repeats.unwrap_or(if shape == Shape::Tiny { 5 } else { 3 }).max(1);
        let opts = Options { device, kind, warmup: args.warmup, repeats, peak_tflops: args.peak_tflops };
        for case in &cases {
            let batch = args.batch.unwrap_or(if *case == "generate" { 1 } else { 8 });
            let w = Workload { shape, batch, seq: args.seq, prompt: args.prompt, new_tokens: args.new_tokens, checkpointing: args.checkpointing, lora_dropout: args.lora_dropout };
            let t = match *case {
                "lora_step" => measure_lora_step(&w, &opts),
                _ => measure_generate(&w, &opts),
            }
            .map_err(|e| AppError::Failed(e.to_string()))?;
            println!("{}", serde_json::to_string(&t).map_err(|e| AppError::Failed(e.to_string()))?);
        }
    }
    Ok(())
}
