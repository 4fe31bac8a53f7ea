# The entry point `snakemake --cores N` finds in a checkout; the workflow itself
# is workflow/Snakefile (shipped with the package, where `repliflow run` finds it).


include: "workflow/Snakefile"


# `include:` keeps the including file's default target, so name the workflow's here.
rule default:
    default_target: True
    input:
        rules.all.input,
