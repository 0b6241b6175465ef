"""mmclip models: the ViT and BERT encoders, AttMIM, EntMLM, the contrastive loss and
the whole :class:`MMCLIPModel`, with a registry of named configs.

Example::

    from mmclip.models import create_model, list_models
    # random masking: one dotted override (mmclip.config)
    model = create_model("mmclip-tiny", overrides={"attmim.tau_final": float("inf")})
"""

from .attmim import AttMIM, MIMDecoder, MIMHead, MIMOutput, PatchGrid, tau_schedule, text_guidance
from .config import (
    AttMIMConfig,
    ContrastiveConfig,
    EntMLMConfig,
    LocalConfig,
    LossWeights,
    MMCLIPConfig,
    TextConfig,
    VisionConfig,
)
from .contrastive import ContrastiveLoss, all_gather_with_grad, contrastive_targets
from .encoding import UntrainedModelWarning
from .entmlm import EntMLM, MLMHead, MLMOutput
from .fusion import TransformerBlock
from .home import (
    PretrainedNotFoundError,
    list_pretrained,
    mmclip_home,
    register_pretrained,
    resolve_model_dir,
)
from .local import LocalAlignmentLoss, local_similarity
from .mmclip import (
    CheckpointMismatchError,
    MMCLIPModel,
    entity_token_weights,
    guidance_token_weights,
)
from .objective import MMCLIPOutput, PretrainingObjective
from .preprocess import load_image_input, preprocess_image, to_model_images
from .registry import apply_overrides, create_model, get_model_config, list_models, register_model
from .text import (
    TextEncoder,
    TextOutput,
    build_wordpiece_tokenizer,
    load_tokenizer,
    minilm_path,
    resolve_text_checkpoint,
)
from .vit import VisionTransformer, ViTOutput, patchify, unpatchify

__all__ = [
    "AttMIM",
    "AttMIMConfig",
    "CheckpointMismatchError",
    "ContrastiveConfig",
    "ContrastiveLoss",
    "EntMLM",
    "EntMLMConfig",
    "LocalAlignmentLoss",
    "LocalConfig",
    "LossWeights",
    "MIMDecoder",
    "MIMHead",
    "MIMOutput",
    "MLMHead",
    "MLMOutput",
    "MMCLIPConfig",
    "MMCLIPModel",
    "MMCLIPOutput",
    "PatchGrid",
    "PretrainedNotFoundError",
    "PretrainingObjective",
    "TextConfig",
    "TextEncoder",
    "TextOutput",
    "TransformerBlock",
    "UntrainedModelWarning",
    "ViTOutput",
    "VisionConfig",
    "VisionTransformer",
    "all_gather_with_grad",
    "apply_overrides",
    "build_wordpiece_tokenizer",
    "contrastive_targets",
    "create_model",
    "entity_token_weights",
    "get_model_config",
    "guidance_token_weights",
    "list_models",
    "list_pretrained",
    "load_image_input",
    "load_tokenizer",
    "local_similarity",
    "minilm_path",
    "mmclip_home",
    "patchify",
    "preprocess_image",
    "register_model",
    "register_pretrained",
    "resolve_model_dir",
    "resolve_text_checkpoint",
    "tau_schedule",
    "text_guidance",
    "to_model_images",
    "unpatchify",
]
