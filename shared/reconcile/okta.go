package reconcile

import (
	"context"
	"strings"

	"github.com/learnerlink/learnerlink/shared/okta"
)

// OktaApps is the part of *okta.Client the adapter uses.
type OktaApps interface {
	ListAppUsers(ctx context.Context, appID, after string) (okta.Page, error)
}

// OktaDirectory is the Directory of one Okta app's assignments.
type OktaDirectory struct {
	Client OktaApps
	AppID  string
}

// AppUsers implements Directory.
func (o OktaDirectory) AppUsers(ctx context.Context, after string) ([]DirUser, string, error) {
	p, err := o.Client.ListAppUsers(ctx, o.AppID, after)
	if err != nil {
		return nil, "", err
	}
	out := make([]DirUser, 0, len(p.Users))
	for _, u := range p.Users {
		out = append(out, dirUser(u))
	}
	return out, p.Next, nil
}

// dirUser reads an assignment. A deprovisioned (deactivated) user, or an
// inactive assignment, is not active: its identity is "unassigned". A
// suspended user stays assigned (Okta does not deprovision apps on
// suspension), but is not created when unknown, nor is a staged one.
func dirUser(u okta.User) DirUser {
	status := strings.ToUpper(u.Status)
	appStatus := ""
	login := u.Profile.Login
	if u.App != nil {
		appStatus = strings.ToUpper(u.App.Status)
		if login == "" {
			login = u.App.UserName
		}
	}
	active := status != "DEPROVISIONED"
	switch appStatus {
	case "INACTIVE", "DEPROVISIONED", "REVOKED":
		active = false
	}
	provision := false
	switch status {
	case "ACTIVE", "PROVISIONED", "RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT":
		provision = active
	}
	p := u.Profile
	return DirUser{
		ID: u.ID, Login: login, Active: active, Provision: provision,
		Email: p.Email, FirstName: p.FirstName, LastName: p.LastName, DisplayName: p.DisplayName,
		Title: p.Title, Department: p.Department, EmployeeNumber: p.EmployeeNumber, CostCenter: p.CostCenter,
		Division: p.Division, Organization: p.Organization, ManagerID: p.ManagerID,
	}
}
