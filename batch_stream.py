"""The resumable stream of training batches that both data pipelines (mnist_ds, folder_ds) share.

Stateless: epoch e's order is drawn from (seed, e), and anything random about a batch from
(seed, its global step), so a run resumed at (epoch, step) sees exactly the batches it would
have seen had it never stopped.
"""
import tensorflow as tf


def epoch_batches_ds(n, batch_size, seed=0, first_epoch=0, skip_steps=0, max_epoch_steps=0):
    """Endless tf.data stream of (global step, indices int32 [batch_size]) for n training items.

    Pass p over the data is a permutation of range(n) drawn from (seed, p), cut into n // batch_size
    full batches (the rest dropped); the passes follow each other without a seam. A training epoch
    is one pass, or max_epoch_steps steps if that is smaller (0: no cap), so that a run's length in
    steps does not grow with the data. Stateless: a run resumed at epoch `first_epoch`, step
    `skip_steps` gets exactly the batches it would have got."""
    steps = n // batch_size                                           # batches in one pass
    per_epoch = min(steps, max_epoch_steps) if max_epoch_steps else steps
    first_pass, skip = divmod(first_epoch * per_epoch + skip_steps, steps)  # where the run starts

    def pass_batches(data_pass):  # one pass's batches of indices: [steps, batch_size]
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=fold_seed(seed, 0, data_pass))
        return tf.reshape(order[:steps * batch_size], [steps, batch_size])

    passes = tf.data.Dataset.range(first_pass, 2 ** 31).map(pass_batches).unbatch()
    return passes.enumerate(start=first_pass * steps).skip(skip)


def epoch_steps(n, batch_size, max_epoch_steps=0):
    """Steps in one training epoch of n items: n // batch_size, at most max_epoch_steps (0: no cap)."""
    steps = n // batch_size
    return min(steps, max_epoch_steps) if max_epoch_steps else steps


def fold_seed(seed, stream, counter):
    """A stateless-RNG seed [2] for (seed, stream, counter): distinct streams never share seeds."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(stream, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(counter, tf.int64))

