# Robustness (evaluation.robustness, docs/robustness.md): every model and baseline scored on
# the held-out samples with noise or dead sensors (--perturb) and on the held-out samples
# simulated again with shifted wave speeds (--allow-setup-change), without retraining and
# choosing nothing there; one table and figure against the clean held-out scores.


rule robustness_simulation_config:
    """The `simulation:` section with the speed shift's Young's modulus (a param: editing
    the shift reruns this condition only)."""
    output:
        "results/robustness/{speed}/config/simulation.yaml",
    log:
        "logs/simulate/robustness-{speed}-config.log",
    benchmark:
        "benchmarks/simulate/robustness-{speed}-config.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        simulation=shifted_simulation,
    script:
        "../scripts/write_yaml.py"


rule simulate_robustness_shard:
    """The held-out samples START:STOP on the plate of shifted wave speeds."""
    input:
        config="results/robustness/{speed}/config/simulation.yaml",
    output:
        "results/robustness/{speed}/data/shard-{shard}.nc",
    log:
        "logs/simulate/robustness-{speed}-shard-{shard}.log",
    benchmark:
        "benchmarks/simulate/robustness-{speed}-shard-{shard}.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: config["dataset"]["workers"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        samples=heldout_shard_range,
        compression=COMPRESSION,
    shell:
        "python -m dlem simulate --config {input.config} --out {output}"
        " --samples {params.samples} --workers {threads}{params.compression} --quiet > {log} 2>&1"


rule robustness_labels:
    input:
        "results/robustness/{speed}/data/shard-{shard}.nc",
    output:
        "results/robustness/{speed}/labels/shard-{shard}.nc",
    log:
        "logs/labels/robustness-{speed}-shard-{shard}.log",
    benchmark:
        "benchmarks/labels/robustness-{speed}-shard-{shard}.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        box_rule=config["labels"]["box_rule"],
    shell:
        "python -m model labels {input} --box-rule {params.box_rule} --out {output} > {log} 2>&1"


rule evaluate_robustness:
    """A trained model on one condition; mask thresholds from its main evaluation."""
    input:
        unpack(robustness_evaluate_input),
    output:
        predictions="results/robustness/{condition}/eval/{model}/predictions.nc",
        metrics="results/robustness/{condition}/eval/{model}/metrics.json",
        table_csv="results/robustness/{condition}/eval/{model}/table1.csv",
        table_md="results/robustness/{condition}/eval/{model}/table1.md",
        figures=directory("results/robustness/{condition}/eval/{model}/figures"),
    log:
        "logs/evaluate/robustness-{condition}-{model}.log",
    benchmark:
        "benchmarks/evaluate/robustness-{condition}-{model}.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        flags=robustness_flags,
        out_dir=subpath(output.metrics, parent=True),
        thresholds=" ".join(str(t) for t in config["evaluation"]["size_thresholds"]),
    shell:
        "python -m model evaluate --data {input.data} --labels {input.labels}"
        " --split {input.split} --checkpoint {input.checkpoint} --out-dir {params.out_dir}"
        " --subset test --from-metrics {input.chosen} {params.flags}"
        " --size-thresholds {params.thresholds} > {log} 2>&1"


rule baseline_robustness:
    """A classical baseline on one condition with the hyperparameters its main run chose
    (no search) and the clean pristine plate."""
    input:
        unpack(robustness_baseline_input),
    output:
        predictions="results/robustness/{condition}/eval/{baseline}/predictions.nc",
        metrics="results/robustness/{condition}/eval/{baseline}/metrics.json",
        table_csv="results/robustness/{condition}/eval/{baseline}/table1.csv",
        table_md="results/robustness/{condition}/eval/{baseline}/table1.md",
        figures=directory("results/robustness/{condition}/eval/{baseline}/figures"),
    log:
        "logs/evaluate/robustness-{condition}-{baseline}.log",
    benchmark:
        "benchmarks/evaluate/robustness-{condition}-{baseline}.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        method=baseline_method,
        flags=robustness_flags,
        out_dir=subpath(output.metrics, parent=True),
        thresholds=" ".join(str(t) for t in config["evaluation"]["size_thresholds"]),
    shell:
        "OMP_NUM_THREADS={threads} python -m model baseline {params.method}"
        " --data {input.data} --labels {input.labels} --split {input.split}"
        " --pristine {input.pristine} --out-dir {params.out_dir} --name {wildcards.baseline}"
        " --subset test --from-metrics {input.chosen} {params.flags}"
        " --size-thresholds {params.thresholds} > {log} 2>&1"


rule compare_robustness:
    """Every model and baseline per condition against its clean held-out score."""
    input:
        clean=expand("results/heldout/eval/{model}/metrics.json", model=SCORED),
        perturbed=expand(
            "results/robustness/{condition}/eval/{model}/metrics.json",
            condition=CONDITIONS,
            model=SCORED,
        ),
    output:
        table_csv="results/compare/robustness.csv",
        table_md=report(
            "results/compare/robustness.md",
            caption="../report/robustness_table.rst",
            category="7. Robustness",
        ),
        figure=report(
            "results/compare/robustness.png",
            caption="../report/robustness_figure.rst",
            category="7. Robustness",
        ),
    log:
        "logs/report/compare-robustness.log",
    benchmark:
        "benchmarks/report/compare-robustness.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        eval_dirs=expand("results/heldout/eval/{model}", model=SCORED)
        + expand(
            "results/robustness/{condition}/eval/{model}",
            condition=CONDITIONS,
            model=SCORED,
        ),
        out_dir=subpath(output.table_csv, parent=True),
    shell:
        "python -m model robustness --eval-dirs {params.eval_dirs}"
        " --out-dir {params.out_dir} > {log} 2>&1"
