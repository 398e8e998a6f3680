# Simulation: the resolved dLEM config, one job per shard, one pristine reference plate.


rule simulation_config:
    """Write the `simulation:` section as the solver's own config file. The section is a
    param, so editing any simulation key reruns this rule and exactly what depends on it."""
    output:
        "results/config/simulation.yaml",
    log:
        "logs/simulate/simulation_config.log",
    benchmark:
        "benchmarks/simulate/simulation_config.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        simulation=config["simulation"],
    script:
        "../scripts/write_yaml.py"


rule simulate_shard:
    """Samples START:STOP of the dataset, written atomically by the solver."""
    input:
        config="results/config/simulation.yaml",
    output:
        "results/data/shard-{shard}.nc",
    log:
        "logs/simulate/shard-{shard}.log",
    benchmark:
        "benchmarks/simulate/shard-{shard}.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: config["dataset"]["workers"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        samples=shard_range,
        compression=COMPRESSION,
    shell:
        "python -m dlem simulate --config {input.config} --out {output}"
        " --samples {params.samples} --workers {threads}{params.compression} --quiet > {log} 2>&1"


rule simulate_heldout_shard:
    """Held-out samples START:STOP (evaluation.heldout), same solver config and CLI."""
    input:
        config="results/config/simulation.yaml",
    output:
        "results/heldout/data/shard-{shard}.nc",
    log:
        "logs/simulate/heldout-shard-{shard}.log",
    benchmark:
        "benchmarks/simulate/heldout-shard-{shard}.tsv"
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


rule simulate_pristine:
    """The same plate without a crack: the reference wavefield (one sample)."""
    input:
        config="results/config/simulation.yaml",
    output:
        "results/data/pristine.nc",
    log:
        "logs/simulate/pristine.log",
    benchmark:
        "benchmarks/simulate/pristine.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        compression=COMPRESSION,
    shell:
        "python -m dlem simulate --config {input.config} --out {output} --pristine"
        "{params.compression} --quiet"
        " > {log} 2>&1"


rule inspect_shard:
    """A readable summary of each shard (sizes, crack statistics) for the report."""
    input:
        "results/data/shard-{shard}.nc",
    output:
        report(
            "results/data/summary/shard-{shard}.txt",
            caption="../report/shard_summary.rst",
            category="1. Data",
        ),
    log:
        "logs/simulate/inspect-{shard}.log",
    benchmark:
        "benchmarks/simulate/inspect-{shard}.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m dlem inspect {input} > {output} 2> {log}"
