# Crack scenarios (evaluation.scenarios, docs/scenarios.md): test sets simulated with another
# `simulation.cracks` section on the training set-up, from sample indices of their own; every
# model and baseline scored on each without retraining and choosing nothing there; one table.


rule scenario_simulation_config:
    """The `simulation:` section with the scenario's crack section (a param: editing or
    adding a scenario reruns that scenario only)."""
    output:
        "results/scenarios/{scenario}/config/simulation.yaml",
    log:
        "logs/simulate/scenario-{scenario}-config.log",
    benchmark:
        "benchmarks/simulate/scenario-{scenario}-config.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        simulation=scenario_simulation,
    script:
        "../scripts/write_yaml.py"


rule simulate_scenario_shard:
    """Samples START:STOP of one scenario."""
    input:
        config="results/scenarios/{scenario}/config/simulation.yaml",
    output:
        "results/scenarios/{scenario}/data/shard-{shard}.nc",
    log:
        "logs/simulate/scenario-{scenario}-shard-{shard}.log",
    benchmark:
        "benchmarks/simulate/scenario-{scenario}-shard-{shard}.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: config["dataset"]["workers"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        samples=scenario_shard_range,
        compression=COMPRESSION,
    shell:
        "python -m dlem simulate --config {input.config} --out {output}"
        " --samples {params.samples} --workers {threads}{params.compression} --quiet > {log} 2>&1"


rule scenario_labels:
    input:
        "results/scenarios/{scenario}/data/shard-{shard}.nc",
    output:
        "results/scenarios/{scenario}/labels/shard-{shard}.nc",
    log:
        "logs/labels/scenario-{scenario}-shard-{shard}.log",
    benchmark:
        "benchmarks/labels/scenario-{scenario}-shard-{shard}.tsv"
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


rule scenario_split:
    """Every scenario sample in `test` (train and val empty): they are only scored."""
    input:
        scenario_labels,
    output:
        "results/scenarios/{scenario}/split/split.json",
    log:
        "logs/split/scenario-{scenario}.log",
    benchmark:
        "benchmarks/split/scenario-{scenario}.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m model split --labels {input} --out {output} --fractions 0 0 1 > {log} 2>&1"


rule evaluate_scenario:
    """A trained model on one scenario; mask thresholds from its main evaluation."""
    input:
        unpack(scenario_evaluate_input),
    output:
        predictions="results/scenarios/{scenario}/eval/{model}/predictions.nc",
        metrics="results/scenarios/{scenario}/eval/{model}/metrics.json",
        table_csv="results/scenarios/{scenario}/eval/{model}/table1.csv",
        table_md="results/scenarios/{scenario}/eval/{model}/table1.md",
        figures=directory("results/scenarios/{scenario}/eval/{model}/figures"),
    log:
        "logs/evaluate/scenario-{scenario}-{model}.log",
    benchmark:
        "benchmarks/evaluate/scenario-{scenario}-{model}.tsv"
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


rule baseline_scenario:
    """A classical baseline on one scenario with the hyperparameters its main run chose
    (no search)."""
    input:
        unpack(scenario_baseline_input),
    output:
        predictions="results/scenarios/{scenario}/eval/{baseline}/predictions.nc",
        metrics="results/scenarios/{scenario}/eval/{baseline}/metrics.json",
        table_csv="results/scenarios/{scenario}/eval/{baseline}/table1.csv",
        table_md="results/scenarios/{scenario}/eval/{baseline}/table1.md",
        figures=directory("results/scenarios/{scenario}/eval/{baseline}/figures"),
    log:
        "logs/evaluate/scenario-{scenario}-{baseline}.log",
    benchmark:
        "benchmarks/evaluate/scenario-{scenario}-{baseline}.tsv"
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


rule compare_scenarios:
    """Every model and baseline per scenario, beside its held-out score."""
    input:
        reference=expand("{folder}/metrics.json", folder=HELDOUT_EVAL_FOLDERS),
        scenarios=expand(
            "{folder}/metrics.json",
            folder=[f for name in SCENARIOS for f in scenario_eval_folders(name)],
        ),
    output:
        table_csv="results/compare/scenarios.csv",
        table_md=report(
            "results/compare/scenarios.md",
            caption="../report/scenarios_table.rst",
            category="8. Crack scenarios",
        ),
    log:
        "logs/report/compare-scenarios.log",
    benchmark:
        "benchmarks/report/compare-scenarios.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        groups=scenario_compare_args(),
        out_dir=subpath(output.table_csv, parent=True),
    shell:
        "python -m model scenarios {params.groups} --out-dir {params.out_dir} > {log} 2>&1"
