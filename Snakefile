# crackpoint: simulate cracked plates (dlem) -> key-point labels -> train -> evaluate -> compare.
#   snakemake --cores 2                                         default config, end to end
#   snakemake --configfile workflow/config/paper.yaml --profile workflow/profiles/slurm
# Rules only call the packages' CLIs; the DAG is assembled from workflow/rules/*.smk.
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "workflow/config/default.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/scenarios.smk"
include: "workflow/rules/peeling.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
