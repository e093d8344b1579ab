"""The optimizers of a run, each with the schedule it steps after every update, and the float16
gradient scaler."""


class OptimizerSet:
    """Named ``(optimizer, scheduler)`` pairs stepped together (the dictionary's and the
    encoder's, Appendices D-E), and the ``torch.amp.GradScaler`` of float16 training, if any.

    :param dict optimizers: name → ``(optimizer, scheduler stepped per step)``.
    :param grad_scaler: the gradient scaler the objective scales the loss with, or ``None``.
    """

    def __init__(self, optimizers, grad_scaler=None):
        self.optimizers = dict(optimizers)
        self.grad_scaler = grad_scaler

    @property
    def params(self):
        """Every parameter the optimizers update."""
        return [p for optimizer, _ in self.optimizers.values()
                for group in optimizer.param_groups for p in group["params"]]

    def zero_grad(self):
        for optimizer, _ in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    def step(self):
        """One update of every optimizer and schedule. With a gradient scaler the optimizers
        unscale, and skip a step whose gradients overflowed (the scaler's business)."""
        for optimizer, scheduler in self.optimizers.values():
            if self.grad_scaler is None:
                optimizer.step()
            else:
                self.grad_scaler.step(optimizer)
            scheduler.step()
        if self.grad_scaler is not None:
            self.grad_scaler.update()

    def learning_rates(self):
        """``lr_<name>``: the first parameter group's current learning rate of each optimizer."""
        return {f"lr_{name}": optimizer.param_groups[0]["lr"]
                for name, (optimizer, _) in self.optimizers.items()}

    def state_dict(self):
        return {"optimizers": {name: {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
                               for name, (optimizer, scheduler) in self.optimizers.items()},
                "grad_scaler": None if self.grad_scaler is None else self.grad_scaler.state_dict()}

    def load_state_dict(self, state):
        for name, (optimizer, scheduler) in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name]["optimizer"])
            scheduler.load_state_dict(state["optimizers"][name]["scheduler"])
        if self.grad_scaler is not None and state.get("grad_scaler"):
            self.grad_scaler.load_state_dict(state["grad_scaler"])
