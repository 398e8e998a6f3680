# One training job per configured model (config `models:`).


rule train:
    """Train one model on the split's train subset (validation subset for early stopping).
    The model's config entry is the `flags` param: editing it retrains that model only.
    The per-epoch state lives in `training-state.pt`, which is not an output: when a job is
    killed, Snakemake deletes its outputs but keeps the state, and the rerun continues from
    the last finished epoch (if the options and inputs are unchanged)."""
    input:
        unpack(train_input),
    output:
        checkpoint="results/models/{model}/checkpoint.pt",
        history=report(
            "results/models/{model}/history.csv",
            caption="../report/history.rst",
            category="3. Training",
            subcategory="{model}",
        ),
        summary="results/models/{model}/summary.txt",
    log:
        "logs/train/{model}.log",
    benchmark:
        "benchmarks/train/{model}.tsv"
    priority: train_priority
    conda:
        "../../envs/crackpoint.yaml"
    threads: model_threads
    resources:
        mem_mb=8000,
        runtime=720,
    params:
        flags=train_flags,
        out_dir=subpath(output.checkpoint, parent=True),
    shell:
        "OMP_NUM_THREADS={threads} python -m model train"
        " --data {input.data} --labels {input.labels} --split {input.split}"
        " --out-dir {params.out_dir} --state {params.out_dir}/training-state.pt"
        " {params.flags} --no-progress > {log} 2>&1"
