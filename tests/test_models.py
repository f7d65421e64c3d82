"""The nets' shapes and wiring, and what one training step does."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from nets import patch_discriminator, receptive_field, unet
from pix2pix import Pix2Pix, build_model


@pytest.mark.parametrize("img_shape", [(28, 28, 1), (64, 64, 3)])
def test_unet_output_shape_and_range(img_shape):
    generator = unet(img_shape, filters=8, max_filters=32)
    src = tf.random.uniform((3, *img_shape), -1, 1)
    fake = generator(src, training=False).numpy()
    assert fake.shape == (3, *img_shape)
    assert fake.dtype == np.float32
    assert fake.min() >= -1.0 and fake.max() <= 1.0
    assert fake.std() > 0  # not a constant


@pytest.mark.parametrize("img_shape, depth, padded", [
    ((28, 28, 1), 5, 32),      # padded to 32, bottleneck 1x1
    ((16, 16, 1), 4, 16),
    ((20, 24, 1), 3, 24),      # 1x1 would need too much padding: stop at a 3x3 bottleneck
])
def test_unet_depth_follows_size(img_shape, depth, padded):
    generator = unet(img_shape, filters=4, max_filters=8)
    convs = [layer for layer in generator.layers if type(layer) is layers.Conv2D]
    assert len(convs) == depth and generator.name == f"unet_{depth}"
    assert convs[0].input.shape[1] == padded
    assert generator.output_shape == (None, *img_shape)


def test_unet_skip_concatenations():
    generator = unet((28, 28, 1), filters=8, max_filters=16)
    concats = [layer for layer in generator.layers if isinstance(layer, layers.Concatenate)]
    assert len(concats) == 5 - 1  # one per decoder block except the output block
    encoder_outputs = {id(layer.output) for layer in generator.layers if isinstance(layer, layers.LeakyReLU)}
    for concat in concats:
        decoder_in, skip_in = concat.input
        assert id(skip_in) in encoder_outputs  # the second input is an encoder block's output
        assert decoder_in.shape[1:3] == skip_in.shape[1:3]


def test_unet_256_is_the_papers():
    generator = unet((256, 256, 3))
    convs = [layer for layer in generator.layers if type(layer) is layers.Conv2D]
    assert [c.filters for c in convs] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert not any(c.use_bias for c in convs)             # no bias in the encoder, as the paper's code
    assert sum(isinstance(layer, layers.BatchNormalization) for layer in generator.layers) == 6 + 7
    dropouts = [layer for layer in generator.layers if isinstance(layer, layers.Dropout)]
    assert len(dropouts) == 3 and all(d.rate == 0.5 for d in dropouts)
    assert [d.output.shape[1] for d in dropouts] == [2, 4, 8]  # the first three decoder blocks
    assert generator.output_shape == (None, 256, 256, 3)


def test_unet_rejects_sizes_that_cannot_work():
    with pytest.raises(ValueError, match="too small"):
        unet((3, 3, 1))
    with pytest.raises(ValueError, match="multiples of 256"):
        unet((28, 28, 1), depth=8)


def test_discriminator_is_conv_only_and_returns_patch_grid():
    discriminator = patch_discriminator((28, 28, 1), filters=8)
    kinds = {type(layer).__name__ for layer in discriminator.layers}
    assert not kinds & {"Dense", "Flatten", "GlobalAveragePooling2D"}
    src = tf.zeros((2, 28, 28, 1))
    logits = discriminator([src, src]).numpy()
    assert logits.shape == (2, 2, 2, 1)          # a grid of patch logits, not one number
    assert receptive_field(discriminator) == 70  # the paper's default, 3 stride-2 layers, at 28x28 too


def test_discriminator_takes_fewer_layers_only_where_three_leave_no_grid():
    assert patch_discriminator((17, 17, 1), filters=4).output_shape == (None, 1, 1, 1)
    for side, layers_needed, grid in ((16, 2, 2), (8, 1, 2), (5, 1, 1)):
        discriminator = patch_discriminator((side, side, 1), filters=4)
        assert discriminator.name == f"patchgan_{layers_needed}"
        assert discriminator.output_shape == (None, grid, grid, 1)
    assert patch_discriminator((28, 28, 1), filters=4, n_layers=2).output_shape == (None, 5, 5, 1)
    with pytest.raises(ValueError, match="too small"):
        patch_discriminator((4, 4, 1), filters=4)


def test_discriminator_70x70_at_256():
    discriminator = patch_discriminator((256, 256, 3))
    assert receptive_field(discriminator) == 70
    assert discriminator.output_shape == (None, 30, 30, 1)
    assert [layer.filters for layer in discriminator.layers if isinstance(layer, layers.Conv2D)] == [
        64, 128, 256, 512, 1]


def test_discriminator_conditional_on_other_channels():
    discriminator = patch_discriminator((32, 32, 1), target_channels=3, filters=8, n_layers=1)
    logits = discriminator([tf.zeros((1, 32, 32, 1)), tf.zeros((1, 32, 32, 3))])
    assert logits.shape == (1, 14, 14, 1) and receptive_field(discriminator) == 16


def test_weights_initialised_from_paper_normal():
    kernel = unet((256, 256, 3)).layers[1].kernel.numpy()  # first conv, 64 * 4 * 4 * 3 weights
    assert abs(kernel.mean()) < 0.002 and abs(kernel.std() - 0.02) < 0.002


def test_one_train_step_updates_both_nets(tiny_model):
    tf.random.set_seed(0)
    model = tiny_model()
    src = tf.random.uniform((4, 16, 16, 1), -1, 1)
    target = tf.random.uniform((4, 16, 16, 1), -1, 1)
    before = [[w.numpy() for w in net.trainable_weights] for net in (model.generator, model.discriminator)]
    logs = model.train_step((src, target))
    assert set(logs) == {"d_loss", "d_real", "d_fake", "g_gan_loss", "g_l1_loss"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    for net, old in zip((model.generator, model.discriminator), before):
        changed = [np.any(o != w.numpy()) for o, w in zip(old, net.trainable_weights)]
        assert all(changed), f"{net.name}: some weights did not move"
    assert model.d_optimizer is not model.g_optimizer
    assert int(model.d_optimizer.iterations) == 1 and int(model.g_optimizer.iterations) == 1


@pytest.mark.slow
def test_a_few_steps_lower_l1(digits, tiny_model):
    from mnist_ds import to_unit_range
    from tasks import mask_square
    tf.random.set_seed(1)
    target = tf.constant(to_unit_range(digits[0][:8]))
    src, _ = mask_square(target, seed=(1, 2))
    model = tiny_model((28, 28, 1), lr=2e-3, dropout_blocks=0)  # no dropout: L1 depends on weights only

    def l1():
        return float(tf.reduce_mean(tf.abs(target - model.generator(src, training=True))))

    first = l1()
    step = tf.function(model.train_step)
    for _ in range(40):
        step((src, target))
    assert l1() < 0.6 * first


def test_test_step_reports_validation_l1(tiny_model):
    model = tiny_model()
    target = tf.zeros((2, 16, 16, 1))
    logs = model.test_step((target, target))
    fake = model(target)
    assert logs["l1"].numpy() == pytest.approx(float(tf.reduce_mean(tf.abs(fake))), rel=1e-5)


def test_grey_to_colour_pairs_train(tiny_model):
    """Own pairs with different channel counts: 1-channel inputs, 3-channel targets."""
    model = tiny_model((32, 32, 1), out_channels=3)
    pairs = tf.data.Dataset.from_tensor_slices((tf.zeros((4, 32, 32, 1)), tf.ones((4, 32, 32, 3)))).batch(2)
    history = model.fit(pairs, epochs=1, verbose=0)
    assert np.isfinite(history.history["g_l1_loss"][0])
    assert model(tf.zeros((1, 32, 32, 1))).shape == (1, 32, 32, 3)


def variant(loss, d_lr=2e-4):
    """A tiny Pix2Pix trained with `loss`; the same initial weights for every call (seeded)."""
    from conftest import build_tiny_model
    keras.utils.set_random_seed(7)
    return build_tiny_model(loss=loss, filters=4, dropout_blocks=0,
                            optimizers=(keras.optimizers.Adam(d_lr, beta_1=0.5), keras.optimizers.Adam(1e-3)))


def test_l1_variant_never_touches_the_discriminator():
    model = variant("l1")
    before = [w.numpy() for w in model.discriminator.weights]
    src = tf.random.uniform((2, 16, 16, 1), -1, 1, seed=1)
    logs = model.train_step((src, -src))
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, model.discriminator.weights))
    assert int(model.d_optimizer.iterations) == 0 and int(model.g_optimizer.iterations) == 1
    assert float(logs["d_loss"]) == 0.0 and float(logs["g_gan_loss"]) == 0.0 and float(logs["g_l1_loss"]) > 0


@pytest.mark.parametrize("loss, uses_target", [("gan", False), ("cgan", False), ("l1+gan", True),
                                               ("l1+cgan", True), ("l1", True)])
def test_only_l1_variants_pull_g_towards_the_target(loss, uses_target):
    """With D frozen (lr 0), the target reaches G's update only through the L1 term."""
    src = tf.random.uniform((2, 16, 16, 1), -1, 1, seed=2)
    first_kernels = []
    for target in (tf.ones_like(src), -tf.ones_like(src)):
        model = variant(loss, d_lr=0.0)
        model.train_step((src, target))
        first_kernels.append(model.generator.trainable_weights[0].numpy())
    assert np.array_equal(*first_kernels) != uses_target


def test_gan_variants_use_an_unconditional_discriminator():
    model = variant("gan")
    assert len(model.discriminator.inputs) == 1
    assert model.discriminator(tf.zeros((1, 16, 16, 1))).shape == (1, 2, 2, 1)
    with pytest.raises(ValueError, match="needs a conditional discriminator"):
        Pix2Pix(generator=unet((16, 16, 1), filters=4, max_filters=8),
                discriminator=patch_discriminator((16, 16, 1), filters=4, conditional=False), loss="cgan")
    with pytest.raises(ValueError, match="loss must be one of"):
        Pix2Pix(img_shape=(16, 16, 1), loss="l2")


def test_presets_say_which_defaults_and_scale_the_unet_to_small_crops():
    from config import Config
    assert Config() == Config.paper() and Config.paper().gen_max_filters == 512 and Config.paper().l1_weight == 100
    # the command line's folder preset: the paper's, and the weight average measured at the paper's scale
    assert Config.folder() == Config.paper(ema=0.999) and Config.folder(ema=0.0) == Config.paper()
    assert Config.folder(crop_size=64).gen_max_filters == 128   # the paper's size rule still applies
    assert Config.paper(crop_size=64).gen_max_filters == 128 and Config.paper(crop_size=16).gen_max_filters == 64
    assert Config.paper(crop_size=64, gen_max_filters=512).gen_max_filters == 512   # a flag wins
    lesson = Config.mnist()
    assert (lesson.task, lesson.epochs, lesson.max_epoch_steps, lesson.batch_size, lesson.l1_weight) == (
        "inpaint", 48, 70, 64, 1000.0)
    assert (lesson.gen_filters, lesson.gen_max_filters, Config.paper().gen_filters) == (32, 128, 64)
    assert (lesson.disc_filters, Config.paper().disc_filters) == (32, 64)
    assert (lesson.lr, Config.paper().lr) == (8e-4, 2e-4)
    fashion = Config.mnist(task="edges2fashion")  # shoes and bags keep the wider nets; a flag still wins
    assert (fashion.gen_filters, fashion.gen_max_filters, fashion.disc_filters, fashion.lr) == (64, 256, 64, 2e-4)
    assert (lesson.disc_layers, fashion.disc_layers) == (0, 2)  # the digits: the builder's (the paper's) 3
    assert Config.mnist(task="denoise").disc_layers == 2  # 34x34 patches drew more real digits there
    assert (lesson.disc_max_filters, fashion.disc_max_filters, Config.paper().disc_max_filters) == (128, 512, 512)
    built = build_model(lesson).discriminator  # the cap reaches the net: its stride-1 block has 128 filters too
    assert [layer.filters for layer in built.layers if hasattr(layer, "filters")] == [32, 64, 128, 128, 1]
    assert Config.mnist(task="edges2fashion", disc_filters=16).disc_filters == 16
    assert (lesson.ema, lesson.precision, lesson.no_paste) == (0.99, "auto", False)
    assert (Config().ema, Config().precision) == (0.0, "auto")  # the paper's no averaging; bf16 where native
    assert Pix2Pix(img_shape=(16, 16, 1)).l1_weight == Config().l1_weight  # Pix2Pix() uses the paper's


def test_paste_known_keeps_known_pixels_bit_identical_and_loads_in_plain_keras(digits, tmp_path):
    """Outside the hole the output is the input, bit for bit; inside, the net's own drawing; the
    saved generator needs nothing from this project to load and gives the same outputs."""
    from mnist_ds import to_unit_range
    from tasks import mask_square
    src, hole = (np.asarray(a) for a in mask_square(to_unit_range(digits[0][:16]), seed=(4, 5)))
    pasting = unet((28, 28, 1), filters=8, max_filters=16, keep_known=True)
    drawing = keras.Model(pasting.input, pasting.get_layer("generated").output)  # the same net, before pasting
    out, drawn = np.asarray(pasting(src)), np.asarray(drawing(src))
    known = hole == 0
    assert np.array_equal(out[known], src[known])
    assert np.array_equal(out[~known], drawn[~known]) and not np.array_equal(drawn[known], src[known])
    path = str(tmp_path / "g.keras")
    pasting.save(path)
    assert np.array_equal(np.asarray(keras.models.load_model(path, compile=False)(src)), out)


def test_ema_generator_holds_the_moving_average_of_the_generators_weights(tiny_model):
    """After each step t: avg = d * avg + (1 - d) * w with d = min(ema, (1 + t) / (10 + t)), for
    every weight (BatchNorm statistics included); what is validated and saved is that average."""
    tf.random.set_seed(0)
    model = tiny_model(ema=0.5)
    src, target = tf.random.uniform((4, 16, 16, 1), -1, 1), tf.random.uniform((4, 16, 16, 1), -1, 1)
    expected = [w.numpy() for w in model.generator.weights]
    for t in (1, 2, 3):
        model.train_step((src, target))
        d = min(0.5, (1 + t) / (10 + t))
        expected = [d * a + (1 - d) * w.numpy() for a, w in zip(expected, model.generator.weights)]
    for avg, want in zip(model.ema_generator.weights, expected):
        np.testing.assert_allclose(avg.numpy(), want, rtol=1e-5, atol=1e-6)
    assert model.output_generator is model.ema_generator
    assert not np.allclose(model.ema_generator.weights[0].numpy(), model.generator.weights[0].numpy())
    with pytest.raises(ValueError, match="ema must be a decay"):
        Pix2Pix(ema=1.0)


def commented_shapes(function):
    """Every `[n, h, w, c]` shape written in the comments of `function`'s source, as (h, w, c)
    tuples, in order; a channel count written as `a + b` (a skip concatenation) is summed."""
    import inspect
    import re
    comments = [line.split("#", 1)[1] for line in inspect.getsource(function).splitlines() if "#" in line]
    found = re.findall(r"\[n, (\d+), (\d+), ([\d +]+)\]", " ".join(comments))
    return [(int(h), int(w), sum(int(c) for c in channels.split("+"))) for h, w, channels in found]


@pytest.mark.parametrize("builder", [unet, patch_discriminator])
def test_the_shape_comments_of_the_builders_are_the_built_shapes(builder):
    """The comments of nets.unet and nets.patch_discriminator state the shapes of BUILDER((28, 28, 1)):
    each shape they name is some layer's output shape, and the last is the net's output."""
    net = builder((28, 28, 1))
    built = {tuple(layer.output.shape[1:]) for layer in net.layers if not isinstance(layer.output, list)}
    written = commented_shapes(builder)
    assert len(written) >= 4
    assert set(written) <= built, f"comments name shapes no layer has: {set(written) - built}"
    assert written[-1] == tuple(net.output.shape[1:])
