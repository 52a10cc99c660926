import warnings

__version__ = '0.1.0'

# tqdm.auto (imported by huggingface_hub, datasets, ...) warns inside a Jupyter kernel without ipywidgets and
# falls back to text bars, which notebooks disable anyway (afp_lib.analysis.notebook): the warning is noise.
warnings.filterwarnings("ignore", message="IProgress not found")
