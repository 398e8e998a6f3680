# Evaluation of each trained model on the configured subset: predictions, metrics, Table 1;
# the classical baselines (no training) write the same files. With evaluation.heldout, every
# model and baseline is also scored on all held-out samples, choosing nothing there.


rule evaluate:
    input:
        unpack(evaluate_input),
    output:
        predictions="results/eval/{model}/predictions.nc",
        metrics="results/eval/{model}/metrics.json",
        table_csv="results/eval/{model}/table1.csv",
        table_md=report(
            "results/eval/{model}/table1.md",
            caption="../report/table1.rst",
            category="4. Evaluation",
            subcategory="{model}",
        ),
        figures=report(
            directory("results/eval/{model}/figures"),
            patterns=["{name}.png"],
            caption="../report/eval_figures.rst",
            category="4. Evaluation",
            subcategory="{model}",
        ),
    log:
        "logs/evaluate/{model}.log",
    benchmark:
        "benchmarks/evaluate/{model}.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        out_dir=subpath(output.metrics, parent=True),
        subset=config["evaluation"]["subset"],
        thresholds=" ".join(str(t) for t in config["evaluation"]["size_thresholds"]),
    shell:
        "python -m model evaluate --data {input.data} --labels {input.labels}"
        " --split {input.split} --checkpoint {input.checkpoint} --out-dir {params.out_dir}"
        " --subset {params.subset} --size-thresholds {params.thresholds} > {log} 2>&1"


rule baseline:
    """A classical damage-imaging baseline: grid search on val, scored on the subset."""
    input:
        data=SHARD_FILES,
        labels=LABEL_FILES,
        split="results/split/split.json",
        pristine="results/data/pristine.nc",
    output:
        predictions="results/eval/{baseline}/predictions.nc",
        metrics="results/eval/{baseline}/metrics.json",
        table_csv="results/eval/{baseline}/table1.csv",
        table_md=report(
            "results/eval/{baseline}/table1.md",
            caption="../report/table1.rst",
            category="4. Evaluation",
            subcategory="{baseline}",
        ),
        figures=report(
            directory("results/eval/{baseline}/figures"),
            patterns=["{name}.png"],
            caption="../report/eval_figures.rst",
            category="4. Evaluation",
            subcategory="{baseline}",
        ),
    log:
        "logs/evaluate/{baseline}.log",
    benchmark:
        "benchmarks/evaluate/{baseline}.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        flags=baseline_flags,
        out_dir=subpath(output.metrics, parent=True),
        subset=config["evaluation"]["subset"],
        thresholds=" ".join(str(t) for t in config["evaluation"]["size_thresholds"]),
    shell:
        "OMP_NUM_THREADS={threads} python -m model baseline {params.flags}"
        " --data {input.data} --labels {input.labels} --split {input.split}"
        " --pristine {input.pristine} --out-dir {params.out_dir} --name {wildcards.baseline}"
        " --subset {params.subset} --size-thresholds {params.thresholds} > {log} 2>&1"


rule evaluate_heldout:
    """A trained model on every held-out sample; mask thresholds from its main evaluation."""
    input:
        unpack(heldout_evaluate_input),
    output:
        predictions="results/heldout/eval/{model}/predictions.nc",
        metrics="results/heldout/eval/{model}/metrics.json",
        table_csv="results/heldout/eval/{model}/table1.csv",
        table_md="results/heldout/eval/{model}/table1.md",
        figures=directory("results/heldout/eval/{model}/figures"),
    log:
        "logs/evaluate/heldout-{model}.log",
    benchmark:
        "benchmarks/evaluate/heldout-{model}.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        out_dir=subpath(output.metrics, parent=True),
        thresholds=" ".join(str(t) for t in config["evaluation"]["size_thresholds"]),
    shell:
        "python -m model evaluate --data {input.data} --labels {input.labels}"
        " --split {input.split} --checkpoint {input.checkpoint} --out-dir {params.out_dir}"
        " --subset test --from-metrics {input.chosen}"
        " --size-thresholds {params.thresholds} > {log} 2>&1"


rule baseline_heldout:
    """A classical baseline on every held-out sample with the hyperparameters its main run
    chose on the main split's val (no search)."""
    input:
        data=HELDOUT_SHARD_FILES,
        labels=HELDOUT_LABEL_FILES,
        split=HELDOUT_SPLIT,
        pristine="results/data/pristine.nc",
        chosen="results/eval/{baseline}/metrics.json",
    output:
        predictions="results/heldout/eval/{baseline}/predictions.nc",
        metrics="results/heldout/eval/{baseline}/metrics.json",
        table_csv="results/heldout/eval/{baseline}/table1.csv",
        table_md="results/heldout/eval/{baseline}/table1.md",
        figures=directory("results/heldout/eval/{baseline}/figures"),
    log:
        "logs/evaluate/heldout-{baseline}.log",
    benchmark:
        "benchmarks/evaluate/heldout-{baseline}.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        method=baseline_method,
        out_dir=subpath(output.metrics, parent=True),
        thresholds=" ".join(str(t) for t in config["evaluation"]["size_thresholds"]),
    shell:
        "OMP_NUM_THREADS={threads} python -m model baseline {params.method}"
        " --data {input.data} --labels {input.labels} --split {input.split}"
        " --pristine {input.pristine} --out-dir {params.out_dir} --name {wildcards.baseline}"
        " --subset test --from-metrics {input.chosen}"
        " --size-thresholds {params.thresholds} > {log} 2>&1"
