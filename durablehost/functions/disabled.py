"""``AzureWebJobs.<name>.Disabled``: the app setting that disables a function (fidelity notes §1.4).

The WebJobs SDK reads ``AzureWebJobs.<name>.Disabled`` and, since Linux app settings cannot hold dots,
``AzureWebJobs_<name>_Disabled``; the value ``1`` or ``true`` (any case) disables
(wjsdk ``Listeners/HostListenerFactory.cs`` ``IsDisabled``, ``IConfigurationExtensions.IsSettingEnabled``).
.NET configuration keys are case-insensitive, so the setting's name is matched case-insensitively too.
It works in both programming models; the ``"disabled"`` key of function.json does not (ignored since
Functions 2.x, azure-functions-host #2767).

What a disabled function does here:

* HTTP trigger: 404, unless the caller presents the master key while keys are enforced (the host's
  ``FunctionInvocationMiddleware`` lets admin-level callers through).
* timer and queue triggers: no listener (``FunctionInfo.disabled``), as the host starts none.
* orchestrator: a start is accepted and the instance fails with the extension's message. The extension
  registers every durable trigger's name at bind time and its executor only when the listener starts
  (dfext ``Bindings/OrchestrationTriggerAttributeBindingProvider.cs``), so ``ThrowIfFunctionDoesNotExist``
  passes and ``OrchestrationMiddleware`` then fails the orchestration with "doesn't exist, is disabled,
  or is not an orchestrator function" (``DurableTaskExtension.cs``).
* activity: the task fails with the same kind of message. In Azure the null executor makes
  ``TaskActivityShim``'s constructor throw inside DTFx's activity dispatcher, so the work item is
  retried with no end (read, not run); durablehost fails the task instead, since an endless silent retry
  is never what anyone wants.
* entity: every operation of a batch fails with the message, the state untouched (in Azure the entity
  middleware dereferences the missing executor; read, not run).
"""

from __future__ import annotations

from collections.abc import Mapping

_ENABLED_VALUES = ("1", "true")


def disabling_setting(function_name: str, settings: Mapping[str, str]) -> str | None:
    """The name of the setting that disables ``function_name``, or None when it is enabled."""
    wanted = {
        f"azurewebjobs.{function_name}.disabled".lower(),
        f"azurewebjobs_{function_name}_disabled".lower(),
    }
    for key, value in settings.items():
        if key.lower() in wanted and value.lower() in _ENABLED_VALUES:
            return key
    return None


def disabled_message(kind: str, name: str, setting: str) -> str:
    """The extension's message for a function it cannot run, and what to do about it here."""
    return (
        f"The function '{name}' doesn't exist, is disabled, or is not an {kind} function. Additional info: "
        f"it is disabled by the app setting {setting}; remove the setting (or set it to false) to enable it."
    )
