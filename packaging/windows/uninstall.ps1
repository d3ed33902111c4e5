<#
.SYNOPSIS
  Uninstall cro from this Windows host: stop it, give every resource back, then remove it.

.DESCRIPTION
  In this order, so no load is left behind: the service or scheduled task "cro" is stopped
  (nothing starts workers again), `cro recover` ends every worker and deletes every
  ballast file and job (if it fails, nothing is removed and the error is shown), then the
  service or task, the event log source, the PATH entry and the install directory are
  removed.
  The data directory (desired.json, the history an auditor may ask for, logs) is kept
  unless -Purge is given.

.EXAMPLE
  & 'C:\Program Files\cro\uninstall.ps1'
.EXAMPLE
  & 'C:\Program Files\cro\uninstall.ps1' -Purge
#>
[CmdletBinding()]
param(
    [string] $InstallDir = (Join-Path $env:ProgramFiles 'cro'),
    [string] $DataDir = (Join-Path $env:ProgramData 'cro'),
    # Also delete the data directory: desired.json, the history and the logs.
    [switch] $Purge
)
Set-StrictMode -Version 2
$ErrorActionPreference = 'Stop'

$admin = ([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
if (-not $admin) { throw 'uninstall.ps1: run it in an elevated PowerShell (as Administrator).' }

$exe = Join-Path $InstallDir 'cro.exe'
$state = Join-Path $DataDir 'state'
$desired = Join-Path $DataDir 'desired.json'

# 1. Nothing may start workers again.
$service = Get-Service -Name cro -ErrorAction SilentlyContinue
if ($service -and $service.Status -ne 'Stopped') { Stop-Service -Name cro }
$task = Get-ScheduledTask -TaskName cro -ErrorAction SilentlyContinue
if ($task) { Disable-ScheduledTask -TaskName cro | Out-Null; Stop-ScheduledTask -TaskName cro }

# 2. Give everything back; stop here if that fails.
if ((Test-Path $exe) -and (Test-Path $state)) {
    & $exe --state-dir $state --desired $desired recover
    if ($LASTEXITCODE -ne 0) {
        throw "uninstall.ps1: cro recover failed (exit $LASTEXITCODE); nothing was removed. Fix what it names, then run this again."
    }
}

# 3. Remove how it ran, its event log source, and the program.
if ($service) { & sc.exe delete cro | Out-Null }
if ($task) { Unregister-ScheduledTask -TaskName cro -Confirm:$false }
if ([Diagnostics.EventLog]::SourceExists('cro')) { Remove-EventLog -Source cro }
$path = [Environment]::GetEnvironmentVariable('Path', 'Machine')
if (($path -split ';') -contains $InstallDir) {
    $kept = ($path -split ';') | Where-Object { $_ -and $_ -ne $InstallDir }
    [Environment]::SetEnvironmentVariable('Path', ($kept -join ';'), 'Machine')
}
if (Test-Path $InstallDir) { Remove-Item -Recurse -Force $InstallDir }
if ($Purge) {
    if (Test-Path $DataDir) { Remove-Item -Recurse -Force $DataDir }
    Write-Host 'cro is uninstalled; its data directory is deleted.'
} else {
    Write-Host "cro is uninstalled; $DataDir (desired.json, history, logs) is kept: -Purge deletes it."
}
