# Key-point labels per shard (paper §3.5) and the deterministic train/val/test split.


rule labels:
    input:
        "results/data/shard-{shard}.nc",
    output:
        "results/labels/shard-{shard}.nc",
    log:
        "logs/labels/shard-{shard}.log",
    benchmark:
        "benchmarks/labels/shard-{shard}.tsv"
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


rule split:
    input:
        LABEL_FILES,
    output:
        "results/split/split.json",
    log:
        "logs/split/split.log",
    benchmark:
        "benchmarks/split/split.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        fractions=" ".join(str(f) for f in config["split"]["fractions"]),
        seed=config["split"]["seed"],
    shell:
        "python -m model split --labels {input} --out {output}"
        " --fractions {params.fractions} --seed {params.seed} > {log} 2>&1"


rule heldout_labels:
    input:
        "results/heldout/data/shard-{shard}.nc",
    output:
        "results/heldout/labels/shard-{shard}.nc",
    log:
        "logs/labels/heldout-shard-{shard}.log",
    benchmark:
        "benchmarks/labels/heldout-shard-{shard}.tsv"
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


rule heldout_split:
    """Every held-out sample in `test` (train and val empty): they are only scored."""
    input:
        HELDOUT_LABEL_FILES,
    output:
        HELDOUT_SPLIT,
    log:
        "logs/split/heldout.log",
    benchmark:
        "benchmarks/split/heldout.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m model split --labels {input} --out {output} --fractions 0 0 1 > {log} 2>&1"
