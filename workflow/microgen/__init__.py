"""microgen: parameter-aware generation of microstructures, validated with statistics.

Every stage is a plain function taking paths and plain parameters; the Snakemake scripts in
``workflow/scripts`` only translate ``snakemake.input/params/output`` into those calls.
"""

__version__ = "0.1.0"
