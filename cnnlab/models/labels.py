"""Class names of the small datasets the course networks are trained on."""
from __future__ import annotations

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

CIFAR100 = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile
cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter
palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket
rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper
table tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf
woman worm""".split()
assert len(CIFAR100) == 100


def default_labels(num_classes: int) -> list[str]:
    """Names for a head of `num_classes` outputs when no dataset says otherwise."""
    if num_classes == 10:
        return list(CIFAR10)
    if num_classes == 100:
        return list(CIFAR100)
    if num_classes == 1000:
        from .imagenet import imagenet_labels
        return imagenet_labels()
    return [f"class_{i}" for i in range(num_classes)]
