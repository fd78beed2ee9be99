"""The regression ViT: timm's VisionTransformer with a flatten readout that keeps timm's keys."""

import torch
from timm.models.vision_transformer import VisionTransformer

from vitheads.model.vit import ChirpViT

TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 24, "depth": 2, "num_heads": 3, "num_classes": 3}


def test_flatten_readout_sees_every_patch_token():
    torch.manual_seed(0)
    model = ChirpViT(global_pool="flatten", **TINY).eval()
    assert model.head.in_features == 16 * 24
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), torch.zeros(2, 3))  # zero-initialised readout
    torch.nn.init.normal_(model.head.weight)
    y = model(x)
    x2 = x.clone()
    x2[:, :, -8:, -8:] += 1.0  # change only the last patch
    assert not torch.allclose(model(x2), y)


def test_token_pooling_is_timms_vision_transformer():
    torch.manual_seed(0)
    ours = ChirpViT(global_pool="token", **TINY).eval()
    torch.manual_seed(0)
    timms = VisionTransformer(global_pool="token", **TINY).eval()
    assert ours.state_dict().keys() == timms.state_dict().keys()
    timms.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(ours(x), timms(x))
