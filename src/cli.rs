//! Command-line definitions (clap) only; the work is in [`crate::app`].

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "icdbench",
    version,
    about = "Reproduce, ablate and extend LLM-based ICD coding research",
    long_about = "icdbench runs declarative TOML experiments: a code set, a benchmark, systems to train or run \
                  (LLM backbones, baselines), and the metrics to score them — micro/macro F1 overall and on \
                  seen/unseen codes. Every run is fingerprinted (sha256 of its resolved spec and inputs) and \
                  its results are cached under results/<experiment>/<fingerprint>/.\n\n\
                  Start with:  icdbench run experiments/quickstart.toml",
    after_help = "Exit codes: 0 success, 1 a run failed, 2 bad input (experiment file, data, code, arguments), \
                  3 (status) runs still queued or running."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one or more experiments (reusing finished runs with the same fingerprint).
    #[command(long_about = "Run every run of the given experiment files: generate or read the data, run each \
                            system, score it, and write results/<experiment>/<fingerprint>/ (spec.json, \
                            manifest.json, predictions-<split>.jsonl, metrics.json, run.log, DONE). A run whose \
                            fingerprint already has a finished folder is reused in seconds; --force recomputes. \
                            An interrupted invocation resumes at the first unfinished run.")]
    Run {
        /// Experiment TOML files.
        #[arg(required = true, value_name = "EXPERIMENT.toml")]
        experiments: Vec<PathBuf>,
        /// Recompute runs and their cached stages (training, predictions) even when a finished result exists;
        /// also the way to replace a corrupt run folder.
        #[arg(long)]
        force: bool,
        /// Where results go.
        #[arg(long, default_value = "results", value_name = "DIR")]
        results: PathBuf,
        /// Hide progress bars.
        #[arg(long)]
        quiet: bool,
        /// Stop training after N optimizer steps as if killed (tests resuming).
        #[arg(long, hide = true, value_name = "N")]
        stop_after_steps: Option<usize>,
        /// Run only the planned run with this fingerprint (or prefix of 12+ hex digits; repeatable), as a
        /// Slurm array task does: a run already finished, or being computed by a live process, exits 0 at once.
        #[arg(long, value_name = "FINGERPRINT")]
        only: Vec<String>,
    },
    /// Hand an experiment's unfinished runs to a cluster scheduler: one Slurm array task per run.
    #[command(long_about = "Plan the experiments, keep the runs that are not finished, not running and not already \
                            queued by an earlier submission, and submit them as one Slurm job array per experiment \
                            (`sbatch --parsable`): results/<experiment>/slurm/<batch>/job.sbatch, with one log per task \
                            in logs/ and the job id in submission.json. Each task runs `icdbench run EXPERIMENT.toml \
                            --only <fingerprint>` with OMP_NUM_THREADS set to --cpus-per-task, the thread count the \
                            runs were planned (fingerprinted) with. Tasks are requeueable: on preemption, `scancel` or \
                            the time limit (Slurm signals the batch script 120 s before it; the script requeues the \
                            task) training checkpoints and stops, and the next attempt resumes there.\n\n\
                            The results folder is the only meeting point: it must be on a filesystem every node \
                            shares, with POSIX rename and flock (see the README, Running on a Slurm cluster).")]
    Submit {
        #[arg(required = true, value_name = "EXPERIMENT.toml")]
        experiments: Vec<PathBuf>,
        /// Submit to Slurm (the one scheduler supported).
        #[arg(long, required = true)]
        slurm: bool,
        #[arg(long, value_name = "P")]
        partition: Option<String>,
        #[arg(long, value_name = "N")]
        gpus_per_task: Option<u32>,
        /// CPU cores per task, and the libtorch threads each run uses (default: this process's thread count).
        #[arg(long, value_name = "N")]
        cpus_per_task: Option<u32>,
        /// Memory per task, as sbatch takes it (e.g. 16G).
        #[arg(long, value_name = "M")]
        mem: Option<String>,
        /// Time limit per task, as sbatch takes it (e.g. 4:00:00).
        #[arg(long, value_name = "T")]
        time: Option<String>,
        #[arg(long, value_name = "A")]
        account: Option<String>,
        /// At most K tasks of the array run at once (`--array=...%K`).
        #[arg(long, value_name = "K")]
        max_parallel: Option<u32>,
        /// One more line for the script's header, e.g. "#SBATCH --qos=high" (repeatable).
        #[arg(long, value_name = "\"#SBATCH ...\"")]
        extra: Vec<String>,
        /// Print the batch script without writing or submitting anything.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = "results", value_name = "DIR")]
        results: PathBuf,
    },
    /// Where each run of the experiments is: done, running, queued, failed or not submitted.
    #[command(long_about = "One line per planned run: done; running (the lock holder, its host, elapsed time and \
                            the last training step); queued (the Slurm queue state and reason, from squeue); \
                            failed (the task's state from sacct where accounting is on, the checkpoint a resubmission \
                            resumes from, and the last lines of its log); or not submitted. Then a summary line. \
                            Exit 0 when every run is done, 3 while some are queued or running, 1 otherwise.")]
    Status {
        #[arg(required = true, value_name = "EXPERIMENT.toml")]
        experiments: Vec<PathBuf>,
        #[arg(long, default_value = "results", value_name = "DIR")]
        results: PathBuf,
        /// Log lines shown for a failed run.
        #[arg(long, default_value_t = 3, value_name = "N")]
        log_lines: usize,
    },
    /// Print the runs an experiment resolves to, with their fingerprints, without running anything.
    Plan {
        #[arg(required = true, value_name = "EXPERIMENT.toml")]
        experiments: Vec<PathBuf>,
        #[arg(long, default_value = "results", value_name = "DIR")]
        results: PathBuf,
        /// Also print each run's resolved spec and input hashes as JSON.
        #[arg(long)]
        json: bool,
        /// Say which parts of the key differ between two runs, each named by a fingerprint
        /// (or prefix) of a planned run or of a run folder under --results.
        #[arg(long, num_args = 2, value_names = ["A", "B"])]
        explain: Option<Vec<String>>,
    },
    /// Score any system's predictions (JSONL) against gold documents (JSONL), icdbench's metrics and conventions.
    #[command(long_about = "Score predictions from any tool on the same footing as icdbench's own runs: the same \
                            scores a run writes to metrics.json (sets, evidence, ranking, invalid predictions).\n\n\
                            Gold: one document per line, {\"id\", \"split\"?, \"text\"?, \"codes\": [..], \"evidence\"?: [..]} \
                            (without text, evidence offsets are taken as given).\n\
                            Predictions: one per line, {\"id\", \"codes\": [..], \"evidence\"?: [..], \"scores\"?: {code: score}}.\n\
                            Each id once per file. Documents without a prediction count as predicting nothing; a predicted \
                            code outside the code table counts as a false positive. Evidence is scored when gold and \
                            predictions both carry it. Seen codes (for the seen/unseen breakdown) come from --train, or \
                            from gold lines with \"split\": \"train\".")]
    Score {
        /// Gold documents (JSONL).
        #[arg(long, value_name = "FILE")]
        gold: PathBuf,
        /// Predictions (JSONL).
        #[arg(long, value_name = "FILE")]
        pred: PathBuf,
        /// Training documents (JSONL) whose codes are the "seen" codes.
        #[arg(long, value_name = "FILE")]
        train: Option<PathBuf>,
        /// Which gold split to score when the gold file holds several.
        #[arg(long, default_value = "test")]
        split: String,
        /// Code table: `builtin+pcs` (ICD-10-CM and ICD-10-PCS), `builtin` (ICD-10-CM) or a table built by `icdbench data build-codes`.
        #[arg(long, default_value = "builtin+pcs")]
        code_table: String,
        /// Bootstrap samples for 95% confidence intervals (0 = none).
        #[arg(long, default_value_t = 1000)]
        bootstrap: usize,
        #[arg(long, default_value_t = 17)]
        seed: u64,
        /// Print the scores as JSON instead of a table: a run's per-split metrics (metrics.json `splits.<split>`).
        #[arg(long)]
        json: bool,
    },
    /// Data tools: export the synthetic benchmark, build the code table, look up codes.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Tables (Markdown, CSV), plots (PNG, SVG) and one HTML page from finished runs.
    #[command(long_about = "Gather every finished run (a folder with DONE) under the given results folders, or the \
                            finished runs of the given experiment files, and write results.md and results.csv (one \
                            row per run and split: micro/macro F1 with 95% CIs, seen/unseen, evidence F1, training \
                            tokens and time; best per column, data set and split in bold; means ± t-intervals over \
                            seeds, one run per seed), plots as PNG \
                            and SVG (F1 per run with CIs, seen vs unseen, F1 against training tokens, span ratio \
                            sweeps, loss curves; each names its runs' fingerprints), published figures where the \
                            data set matches, and index.html with all of it in one file. Numbers from different \
                            code do not compare like with like: of the runs of one spec, only those of the newest \
                            code identity are kept (the others are listed as left out) unless --all-versions.")]
    Report {
        /// Results folders (any depth), run folders or experiment TOML files (default: --results).
        #[arg(value_name = "RESULTS_DIR|EXPERIMENT.toml")]
        inputs: Vec<PathBuf>,
        /// Output folder (default: results/<experiment>/report/ when all runs share one experiment, else results/report/).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Where experiment files' results are (and what to report when no input is given).
        #[arg(long, default_value = "results", value_name = "DIR")]
        results: PathBuf,
        /// Keep runs computed by older code too, each labelled with its code identity (default: per
        /// spec, only the runs of the newest code identity; the others are listed as left out).
        #[arg(long)]
        all_versions: bool,
    },
    /// Is B better than A? Paired bootstrap over documents for micro/macro F1 differences, overall and seen/unseen.
    #[command(long_about = "Compare two finished runs scored on the same documents: resample document indices with \
                            replacement (once per sample, shared by both runs), score both on each resample, and \
                            report B − A for micro- and macro-F1 overall and on seen/unseen codes, with a 95% \
                            percentile interval and a two-sided p-value. A and B are run folders or fingerprint \
                            prefixes of runs under --results.")]
    Compare {
        /// Run folder or fingerprint prefix (4+ hex digits) of system A.
        #[arg(value_name = "A")]
        a: String,
        /// Run folder or fingerprint prefix of system B.
        #[arg(value_name = "B")]
        b: String,
        #[arg(long, default_value = "test")]
        split: String,
        /// Paired bootstrap samples.
        #[arg(long, default_value_t = 2000)]
        samples: usize,
        #[arg(long, default_value_t = 17)]
        seed: u64,
        /// Where fingerprint prefixes are looked up.
        #[arg(long, default_value = "results", value_name = "DIR")]
        results: PathBuf,
        /// Print the comparison as JSON (full precision) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// CI gate: run (or reuse) the experiments of a CI config and compare their metrics with a checked-in reference.
    #[command(long_about = "Run the experiments a CI config names (finished runs with the same fingerprint are reused), \
                            read the gated metrics of every run, matched by name (experiment / run label), and compare \
                            them with the reference file under each metric's tolerance (F1 points or relative). Prints \
                            what moved. Exit 0 when nothing regressed beyond its tolerance, 1 when a metric regressed, a \
                            run or metric of the reference is missing, or a run failed, 2 for a missing or invalid CI \
                            config or reference. --update writes the current values as the new reference.\n\n\
                            CI config (paths relative to it):\n  experiments = [\"../baselines/dictionary.toml\"]\n  \
                            reference = \"../baselines/reference/quickstart-dictionary.json\"\n  [[gate]]\n  \
                            metric = \"test.overall.micro_f1\"   # <split>.<overall|seen|unseen>.<micro_f1|macro_f1|...>, cost.<field>\n  \
                            points = 0.5                       # or relative = 0.1")]
    Check {
        /// The CI config (TOML).
        #[arg(value_name = "CI.toml", default_value = "ci/check.toml")]
        config: PathBuf,
        /// Where results go (and finished runs are reused from).
        #[arg(long, default_value = "results", value_name = "DIR")]
        results: PathBuf,
        /// Write the current values as the new reference instead of comparing.
        #[arg(long)]
        update: bool,
        /// text, markdown (for $GITHUB_STEP_SUMMARY), or github (annotation lines, then the markdown).
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
    },
    /// Ask a backbone something: load it, apply its chat format, and decode (greedy unless --temperature).
    #[command(long_about = "Load a backbone (a packaged short name such as smollm2-135m, a GGUF file, or a Hugging Face \
                            folder), wrap the prompt in the model's chat format, and generate. Prints the answer and \
                            prefill/decode throughput. --constrain-codes keeps every ICD-10-CM code the model writes \
                            inside the code set.")]
    Generate {
        /// Backbone: `smollm2-135m`, a .gguf file, or a Hugging Face folder.
        #[arg(long, default_value = "smollm2-135m")]
        backbone: String,
        /// The user message (repeat for a batch).
        #[arg(long = "prompt", required = true)]
        prompts: Vec<String>,
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        /// 0 = greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long, default_value_t = 17)]
        seed: u64,
        /// `auto`, `cpu`, `cuda`, `cuda:N`.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Send the prompt as it is, without the chat format.
        #[arg(long)]
        raw: bool,
        /// Restrict any code the model writes to billable ICD-10-CM codes.
        #[arg(long)]
        constrain_codes: bool,
    },
    /// Time the model layer on fixed workloads (LoRA step, greedy decoding), one JSON line per case.
    #[command(long_about = "Times a LoRA training step (r=16 on all projections, every next token labelled) and \
                            greedy decoding on Llama-shaped models with random weights (no download), printing one \
                            JSON line per case in the format of scripts/bench/pytorch_reference.py: seconds, tokens/s, \
                            peak memory and, for training, model FLOPs per token and MFU. scripts/bench/compare.sh runs \
                            both frameworks side by side and prints the ratios; scripts/gpu-bench.sh does it on a GPU.")]
    Speed {
        /// Comma-separated: tiny, smollm2-135m, llama-3.2-1b, llama-3.1-8b, qwen2.5-7b.
        #[arg(long, alias = "shape", default_value = "tiny,smollm2-135m")]
        shapes: String,
        /// Comma-separated: lora_step, generate.
        #[arg(long, default_value = "lora_step,generate")]
        cases: String,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// f32 or bf16.
        #[arg(long, default_value = "f32")]
        dtype: String,
        /// libtorch threads (0 = libtorch's default).
        #[arg(long, default_value_t = 0)]
        threads: i32,
        /// Training: tokens per row.
        #[arg(long, default_value_t = 128)]
        seq: i64,
        /// Rows per training step, or sequences decoded together (default: 8 for lora_step, 1 for generate).
        #[arg(long)]
        batch: Option<i64>,
        /// Generation: prompt tokens.
        #[arg(long, default_value_t = 256)]
        prompt: i64,
        /// Generation: new tokens per row.
        #[arg(long, default_value_t = 32)]
        new_tokens: i64,
        /// Training: recompute each layer's activations in backward.
        #[arg(long)]
        checkpointing: bool,
        /// Training: LoRA dropout (the same on both sides of a comparison).
        #[arg(long, default_value_t = 0.05)]
        lora_dropout: f64,
        /// Timed repeats (default: 5 for tiny, 3 otherwise), after `--warmup` untimed ones.
        #[arg(long)]
        repeats: Option<usize>,
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// The device's peak dense TFLOP/s in this dtype, for MFU (e.g. 989 for an H100 in bf16).
        #[arg(long)]
        peak_tflops: Option<f64>,
    },
    /// Show the libtorch build, CUDA availability and thread count of this machine.
    Info {
        /// Also run a small forward/backward on this device (`cpu`, `cuda`, `auto`) and compare it with CPU.
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write an experiment's documents (e.g. the synthetic benchmark) as JSONL and/or parquet, one file per split.
    Export {
        #[arg(value_name = "EXPERIMENT.toml")]
        experiment: PathBuf,
        /// Output folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
    /// A data card for an experiment's data: documents per split, words and codes per document, the code-frequency long tail, unseen test codes, evidence spans per code.
    #[command(long_about = "Load the experiment's data (any source: synthetic, jsonl, mimic, mdace, codiesp) as a run \
                            would, print a data card as tables, and draw it as a PNG (2x2 panels: documents per split, \
                            words per document, code-frequency long tail, evidence spans per code).")]
    Stats {
        #[arg(value_name = "EXPERIMENT.toml")]
        experiment: PathBuf,
        /// Where the PNG goes (default: results/<experiment name>/data-stats.png).
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        /// Print the numbers as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Build the compact ICD-10-CM table from the CDC tabular-list XML (see scripts/build-codeset.sh).
    BuildCodes {
        /// The tabular list XML, e.g. icd10c-tabular-April-1-2026.xml.
        #[arg(long, value_name = "FILE")]
        xml: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Look up codes: description, billable, parent, chapter, inclusion terms.
    Code {
        #[arg(required = true)]
        codes: Vec<String>,
        /// `builtin+pcs` (ICD-10-CM and ICD-10-PCS), `builtin` (ICD-10-CM) or a table file.
        #[arg(long, default_value = "builtin+pcs")]
        code_table: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Markdown,
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Parquet,
    Both,
}
